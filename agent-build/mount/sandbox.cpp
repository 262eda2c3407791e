#include "agent-build/mount/sandbox.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "common/error.h"
#include "common/subprocess.h"

namespace imgpipe::build {
namespace {

struct Capability {
  const char* name;
  int number;
};

// Docker's default set less CAP_MKNOD and CAP_NET_RAW: enough for dpkg (chown, setuid bits,
// file capabilities via setcap), apt (drops to _apt), useradd/passwd (audit), daemons' postinst
// that chroot or bind low ports in a test. Deliberately absent, among others: SYS_ADMIN (mount,
// namespaces, BPF), SYS_MODULE, SYS_RAWIO, MKNOD, SYS_PTRACE, SYS_BOOT, NET_ADMIN, and
// DAC_READ_SEARCH (open_by_handle_at reaches any file of a mounted filesystem: the "shocker"
// container escape).
constexpr Capability kKept[] = {
    {"CAP_CHOWN", CAP_CHOWN},
    {"CAP_DAC_OVERRIDE", CAP_DAC_OVERRIDE},
    {"CAP_FOWNER", CAP_FOWNER},
    {"CAP_FSETID", CAP_FSETID},
    {"CAP_KILL", CAP_KILL},
    {"CAP_SETGID", CAP_SETGID},
    {"CAP_SETUID", CAP_SETUID},
    {"CAP_SETPCAP", CAP_SETPCAP},
    {"CAP_SETFCAP", CAP_SETFCAP},
    {"CAP_SYS_CHROOT", CAP_SYS_CHROOT},
    {"CAP_NET_BIND_SERVICE", CAP_NET_BIND_SERVICE},
    {"CAP_AUDIT_WRITE", CAP_AUDIT_WRITE},
};

// A name that stays in its directory: no '/', not "." or "..", nothing a shell or bwrap reads
// as an option.
bool isFileName(std::string_view s) {
  return !s.empty() && s.size() <= 255 && s != "." && s != ".." && s.front() != '-' &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

bool isPathBeneath(std::string_view rel) {
  if (rel.empty()) return false;
  while (true) {
    auto slash = rel.find('/');
    if (!isFileName(rel.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    rel.remove_prefix(slash + 1);
  }
}

int lastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  in >> last;
  return last;
}

}  // namespace

const std::vector<std::string>& sandboxCapabilities() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& c : kKept)
      v.emplace_back(c.name);
    return v;
  }();
  return names;
}

void requireBubblewrap() {
  if (::access(std::string(kBwrap).c_str(), X_OK) != 0)
    throw Error("bubblewrap (" + std::string(kBwrap) +
                ") is not installed; every command in an image runs in it. Install the Debian "
                "package bubblewrap (scripts/install-deps.sh does)");
}

std::vector<std::string> sandboxCommand(const SandboxSpec& spec, definition::Network network,
                                        const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::logic_error("sandboxCommand: empty argv");
  std::vector<std::string> a = {spec.helper.string(), "sandbox-exec"};
  if (network == definition::Network::proxy) {
    if (spec.netns.empty())
      throw Error("network: proxy, but the build has no proxy gate (build.proxy is not set)");
    a.insert(a.end(), {"--netns", spec.netns.string()});
  }
  a.insert(a.end(), {// The image, recursively with what the build mounted into it
                     // (/run, the apt cache): bwrap adds nodev and nosuid to each, so a
                     // device node the base image ships opens nothing.
                     "--bind", spec.root.string(), "/",
                     // A fresh /dev per command: null, zero, full, random, urandom,
                     // tty, a private devpts; no host block device.
                     "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"});
  std::set<std::string> dirs;
  for (const auto& d : spec.devices) {
    if (!isFileName(d.name)) throw Error("refusing device name '" + d.name + "' in the sandbox");
    a.insert(a.end(), {"--dev-bind", d.hostNode.string(), "/dev/" + d.name});
  }
  for (const auto& l : spec.links) {
    // The link's own path must stay beneath /dev; its target is resolved inside the sandbox only.
    if (!isPathBeneath(l.path)) throw Error("refusing /dev link '" + l.path + "' in the sandbox");
    auto slash = l.path.rfind('/');
    if (slash != std::string::npos && dirs.insert(l.path.substr(0, slash)).second)
      a.insert(a.end(), {"--dir", "/dev/" + l.path.substr(0, slash)});
    a.insert(a.end(), {"--symlink", l.target, "/dev/" + l.path});
  }
  // /proc of the sandbox's own PID namespace: /proc/1 is its init, whose root is the image.
  // /proc/sys read-only: most of it is host-wide (kernel.core_pattern names a program the kernel
  // runs as root on the host). bwrap (0.8) covers it only when its own access(W_OK) test fails,
  // which as real root it does not (isolation_test found it writable); it covers /proc/irq and
  // /proc/bus itself.
  a.insert(a.end(), {"--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--ro-bind-try",
                     "/proc/sysrq-trigger", "/proc/sysrq-trigger", "--ro-bind", "/sys", "/sys"});
  a.insert(a.end(), {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"});
  if (network == definition::Network::none) a.push_back("--unshare-net");
  // Nothing outlives the command: bwrap's child gets SIGKILL when bwrap dies, and the PID
  // namespace takes every process left in it along. A new session: no TIOCSTI into a terminal.
  a.insert(a.end(), {"--die-with-parent", "--new-session", "--cap-drop", "ALL"});
  for (const auto& c : kKept)
    a.insert(a.end(), {"--cap-add", c.name});
  a.insert(a.end(), {"--chdir", "/", "--"});
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

std::string describeSandboxed(const std::vector<std::string>& argv) {
  // No option value sandboxCommand() writes is a bare "--": the first one ends bwrap's options.
  auto dash = std::find(argv.begin(), argv.end(), "--");
  if (argv.size() < 2 || argv[1] != "sandbox-exec" || dash == argv.end()) return joinCommand(argv);
  return joinCommand({dash + 1, argv.end()}) + " (in the image sandbox)";
}

int sandboxExecMain(int argc, char** argv) {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "imgpipe sandbox-exec: %s: %s\n", what.c_str(), std::strerror(errno));
    return 127;
  };
  int first = 1;
  if (argc > 2 && std::string_view(argv[1]) == "--netns") {
    // Before the capabilities go: joining a namespace takes CAP_SYS_ADMIN.
    const int ns = ::open(argv[2], O_RDONLY | O_CLOEXEC);
    if (ns < 0) return fail(std::string("open ") + argv[2]);
    if (::setns(ns, CLONE_NEWNET) != 0) return fail(std::string("setns ") + argv[2]);
    ::close(ns);
    first = 3;
  }
  // The bounding set is what an execve can ever grant; bwrap (0.8) as real root leaves it full
  // and relies on no_new_privs alone. Cut it here, before bwrap: bwrap itself still needs
  // CAP_SYS_ADMIN and friends to build the namespaces, so those stay in the inheritable set,
  // which an execve by root turns into permitted capabilities; bwrap then sets the command's
  // inheritable set to the kept ones, and the bounding set caps everything below.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return fail("capget");
  for (auto& d : data)
    d.inheritable = d.permitted;
  if (::syscall(SYS_capset, &header, data) != 0) return fail("capset");
  std::set<int> kept;
  for (const auto& c : kKept)
    kept.insert(c.number);
  for (int cap = 0, last = lastCapability(); cap <= last; ++cap) {
    if (kept.contains(cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return fail("dropping capability " + std::to_string(cap) + " from the bounding set");
  }
  // Whatever the build process holds without O_CLOEXEC (a lock, the event pipe to the agent)
  // must not reach the image.
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) return fail("close_range");

  std::vector<char*> args;
  std::string bwrap(kBwrap);
  args.push_back(bwrap.data());
  for (int i = first; i < argc; ++i)
    args.push_back(argv[i]);
  args.push_back(nullptr);

  // bwrap's outer process exits as soon as the sandbox's init reports the command's status, while
  // that init may still be taking the namespace's last processes down; orphaned, it would become
  // a zombie of the build child (PID 1 of the build's namespace, which reaps only its own
  // commands). As a subreaper this process adopts it, and returns only when every process of the
  // sandbox is gone: "the command ended" then means nothing of it runs any more.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return fail("PR_SET_CHILD_SUBREAPER");
  const pid_t child = ::fork();
  if (child < 0) return fail("fork");
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) ::_exit(137);
    ::execv(bwrap.c_str(), args.data());
    fail("exec " + bwrap);
    ::_exit(127);
  }
  int code = 127;
  for (;;) {
    int status = 0;
    const pid_t died = ::wait(&status);
    if (died < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing of the sandbox is left
    }
    if (died == child) code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return code;
}

}  // namespace imgpipe::build
