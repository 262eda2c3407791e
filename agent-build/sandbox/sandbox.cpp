#include "agent-build/sandbox/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>

#include "agent-build/sandbox/seccomp_filter.h"
#include "common/error.h"
#include "common/subprocess.h"

namespace imgpipe::build {
namespace {

// sandbox-exec's tmpfs for the device nodes and idmapped trees it makes, in its own mount
// namespace: a path every host has and bwrap does not use (the sandbox gets a /dev/shm of its
// own). Mode 0755, so that the sandbox's root, nobody to the host, can pass it.
constexpr const char* kStage = "/dev/shm";

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

std::string stagedDevice(std::string_view name) {
  return std::string(kStage) + "/" + std::string(name);
}

std::string stagedTree(std::size_t index) {
  return std::string(kStage) + "/imgpipe-tree-" + std::to_string(index);
}

std::vector<std::string> sandboxCommand(const SandboxSpec& spec, definition::Network network,
                                        const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::logic_error("sandboxCommand: empty argv");
  // sandbox-exec's own options: what must be made before bwrap runs, as root of the host.
  std::vector<std::string> a = {spec.helper.string(), "sandbox-exec"};
  // A command with network joins a namespace made for it (the proxy gate's, the slirp gate's);
  // none shares the host's: its loopback and abstract sockets are the agent's and its peers'.
  if (network != definition::Network::none) {
    if (spec.netns.empty())
      throw Error(network == definition::Network::proxy
                      ? "network: proxy, but the build has no proxy gate (build.proxy is not set)"
                      : "network: host, but the sandbox was given no network namespace");
    a.insert(a.end(), {"--netns", spec.netns.string()});
  }
  a.insert(a.end(), {"--userns", std::to_string(spec.ids.base)});
  // Each tree the sandbox owns is cloned idmapped onto sandbox-exec's stage, in order; bwrap binds
  // the clone (the host path itself may sit beneath directories only host root may pass).
  std::vector<std::string> trees;
  auto own = [&](const std::string& hostPath) {
    a.insert(a.end(), {"--idmap", hostPath});
    trees.push_back(stagedTree(trees.size()));
    return trees.back();
  };
  const std::string root = spec.root.empty() ? "" : own(spec.root.string());
  std::vector<std::string> sources;
  for (const auto& m : spec.mounts) {
    if (!m.target.starts_with("/") || m.target.find("/../") != std::string::npos ||
        m.target.ends_with("/.."))
      throw Error("refusing sandbox mount target '" + m.target + "'");
    const bool owned = m.idmapped || m.kind == SandboxMount::Kind::writable;
    sources.push_back(owned ? own(m.source) : m.source);
  }
  for (const auto& d : spec.devices) {
    if (!isFileName(d.name)) throw Error("refusing device name '" + d.name + "' in the sandbox");
    a.insert(a.end(), {"--device", d.hostNode.string(), d.name});
  }
  a.push_back("--");

  // bwrap's: the tree, then the namespaces and what the command keeps.
  if (!root.empty())
    // The image, recursively with what the build mounted into it (/run, the apt cache): bwrap
    // adds nodev and nosuid to each, so a device node the base image ships opens nothing.
    a.insert(a.end(), {"--bind", root, "/"});
  // A fresh /dev per command: null, zero, full, random, urandom, tty, a private devpts; no host
  // block device.
  a.insert(a.end(), {"--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"});
  std::set<std::string> dirs;
  for (const auto& d : spec.devices)
    a.insert(a.end(), {"--dev-bind", stagedDevice(d.name), "/dev/" + d.name});
  for (const auto& l : spec.links) {
    // The link's own path must stay beneath /dev; its target is resolved inside the sandbox only.
    if (!isPathBeneath(l.path)) throw Error("refusing /dev link '" + l.path + "' in the sandbox");
    auto slash = l.path.rfind('/');
    if (slash != std::string::npos && dirs.insert(l.path.substr(0, slash)).second)
      a.insert(a.end(), {"--dir", "/dev/" + l.path.substr(0, slash)});
    a.insert(a.end(), {"--symlink", l.target, "/dev/" + l.path});
  }
  for (std::size_t i = 0; i < spec.mounts.size(); ++i) {
    const auto& m = spec.mounts[i];
    switch (m.kind) {
      case SandboxMount::Kind::readOnly:
        a.insert(a.end(), {"--ro-bind", sources[i], m.target});
        break;
      case SandboxMount::Kind::readOnlyIfPresent:
        a.insert(a.end(), {"--ro-bind-try", sources[i], m.target});
        break;
      case SandboxMount::Kind::writable:
        a.insert(a.end(), {"--bind", sources[i], m.target});
        break;
      case SandboxMount::Kind::tmpfs:
        a.insert(a.end(), {"--tmpfs", m.target});
        break;
      case SandboxMount::Kind::symlink:
        a.insert(a.end(), {"--symlink", m.source, m.target});
        break;
    }
  }
  // /proc of the sandbox's own PID namespace: /proc/1 is its init, whose root is the image.
  // /proc/sys read-only: most of it is host-wide (kernel.core_pattern names a program the kernel
  // runs as root on the host); the user namespace refuses those writes too, this says so first.
  // bwrap (0.8) covers it only when its own access(W_OK) test fails, which as root it does not
  // (isolation_test found it writable); it covers /proc/irq and /proc/bus itself.
  a.insert(a.end(), {"--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--ro-bind-try",
                     "/proc/sysrq-trigger", "/proc/sysrq-trigger", "--ro-bind", "/sys", "/sys"});
  a.insert(a.end(), {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"});
  if (network == definition::Network::none) a.push_back("--unshare-net");
  // Nothing outlives the command: bwrap's child gets SIGKILL when bwrap dies, and the PID
  // namespace takes every process left in it along. A new session: no TIOCSTI into a terminal.
  a.insert(a.end(), {"--die-with-parent", "--new-session", "--cap-drop", "ALL"});
  if (spec.imageCapabilities)
    for (const auto& c : kKept)
      a.insert(a.end(), {"--cap-add", c.name});
  a.insert(a.end(), {"--chdir", spec.chdir, "--"});
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

std::string describeSandboxed(const std::vector<std::string>& argv) {
  // No option value sandboxCommand() writes is a bare "--": the first ends sandbox-exec's
  // options, the second bwrap's.
  auto first = std::find(argv.begin(), argv.end(), "--");
  auto dash = first == argv.end() ? first : std::find(first + 1, argv.end(), "--");
  if (argv.size() < 2 || argv[1] != "sandbox-exec" || dash == argv.end()) return joinCommand(argv);
  return joinCommand({dash + 1, argv.end()}) + " (in the image sandbox)";
}

namespace {

struct ExecOptions {
  std::string netns;
  std::optional<UidRange> ids;
  std::vector<std::filesystem::path> idmap;
  std::vector<SandboxDevice> devices;
  int bwrapArgs = 0;  // index of bwrap's first option
};

// Throws Error for anything but the options sandboxCommand() writes.
ExecOptions parseExecOptions(int argc, char** argv) {
  ExecOptions o;
  int i = 1;
  auto value = [&](std::string_view opt) -> std::string {
    if (i + 1 >= argc) throw Error(std::string(opt) + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      o.bwrapArgs = i + 1;
      break;
    }
    if (arg == "--netns") {
      o.netns = value(arg);
    } else if (arg == "--userns") {
      const auto v = value(arg);
      UidRange r;
      std::size_t used = 0;
      const auto n = std::stoull(v, &used);
      if (used != v.size() || n > 0xFFFFFFFFULL) throw Error("--userns: not a uid: " + v);
      r.base = static_cast<std::uint32_t>(n);
      checkUidRange(r, "--userns");
      o.ids = r;
    } else if (arg == "--idmap") {
      o.idmap.emplace_back(value(arg));
    } else if (arg == "--device") {
      SandboxDevice d;
      d.hostNode = value(arg);
      d.name = value(arg);
      if (!isFileName(d.name)) throw Error("--device: refusing name '" + d.name + "'");
      o.devices.push_back(std::move(d));
    } else {
      throw Error("unknown option '" + std::string(arg) + "'");
    }
  }
  if (o.bwrapArgs == 0) throw Error("no '--' before bwrap's options");
  if (!o.ids) throw Error("--userns is required: no sandbox runs as the host's root");
  return o;
}

// The device nodes, owned by the sandbox's root, on a tmpfs of this mount namespace: the host's
// own nodes (devtmpfs) cannot be idmapped, and their owner (host root) is nobody inside.
void stageDevices(const std::vector<SandboxDevice>& devices, const UidRange& ids) {
  for (const auto& d : devices) {
    struct stat st {};
    if (::stat(d.hostNode.c_str(), &st) != 0) throwErrno("stat " + d.hostNode.string());
    if (!S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode))
      throw Error(d.hostNode.string() + " is not a device node");
    const auto staged = stagedDevice(d.name);
    if (::mknod(staged.c_str(), (st.st_mode & S_IFMT) | 0660, st.st_rdev) != 0)
      throwErrno("mknod " + staged);
    if (::chown(staged.c_str(), ids.hostRoot(), ids.hostRoot()) != 0) throwErrno("chown " + staged);
  }
}

// The capability sets an execve by root turns into permitted ones: the inheritable set is what
// bwrap, run next, needs to build its namespaces (the bounding set below no longer has them).
bool inheritPermitted() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  for (auto& d : data)
    d.inheritable = d.permitted;
  return ::syscall(SYS_capset, &header, data) == 0;
}

}  // namespace

int sandboxExecMain(int argc, char** argv) {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "imgpipe sandbox-exec: %s: %s\n", what.c_str(), std::strerror(errno));
    return 127;
  };
  ExecOptions opt;
  UniqueFd userns;
  try {
    opt = parseExecOptions(argc, argv);
    if (!opt.netns.empty()) {
      // Before anything else: joining a namespace takes CAP_SYS_ADMIN in the host's.
      UniqueFd ns(::open(opt.netns.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns) throwErrno("open " + opt.netns);
      if (::setns(ns.get(), CLONE_NEWNET) != 0) throwErrno("setns " + opt.netns);
    }
    // The idmapped views and the device nodes exist in this process's mount namespace only, and
    // go with it.
    if (::unshare(CLONE_NEWNS) != 0) throwErrno("unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      throwErrno("making / private");
    if (::mount("imgpipe-sandbox", kStage, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") != 0)
      throwErrno(std::string("mounting a tmpfs on ") + kStage);
    userns = makeUserNamespace(*opt.ids);
    for (std::size_t i = 0; i < opt.idmap.size(); ++i)
      idmapOnto(opt.idmap[i], stagedTree(i), userns.get());
    stageDevices(opt.devices, *opt.ids);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "imgpipe sandbox-exec: %s\n", e.what());
    return 127;
  }
  // A session keyring of its own: the one inherited from the agent (and root's user keyring
  // through it) is not the sandbox's. The filter then refuses every keyring call inside.
  if (::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr) < 0)
    return fail("joining a new session keyring");
  // Root of the user namespace from here on: host uid `base`, with every capability there and
  // none in the host's.
  if (::setns(userns.get(), CLONE_NEWUSER) != 0) return fail("entering the user namespace");
  if (::setgroups(0, nullptr) != 0 || ::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0)
    return fail("becoming root of the user namespace");
  // The bounding set is what an execve can ever grant; bwrap (0.8) run as root leaves it full and
  // relies on no_new_privs alone. Cut it here, in the user namespace (entering one gives a full
  // bounding set) and before bwrap: bwrap itself still needs CAP_SYS_ADMIN and friends there to
  // build the namespaces, which it gets from the inheritable set (next); bwrap then sets the
  // command's inheritable set to the kept ones, and the bounding set caps everything below.
  // (The inheritable set first: it may only be raised within the bounding set.)
  if (!inheritPermitted()) return fail("capset");
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

  // The seccomp program, for bwrap to install right before it executes the command.
  const auto program = seccompProgram();
  const int filter = ::memfd_create("imgpipe-seccomp", 0);
  if (filter < 0) return fail("memfd_create");
  const auto bytes = program.size() * sizeof(sock_filter);
  if (::write(filter, program.data(), bytes) != static_cast<ssize_t>(bytes) ||
      ::lseek(filter, 0, SEEK_SET) != 0)
    return fail("writing the seccomp program");

  std::vector<char*> args;
  std::string bwrap(kBwrap);
  std::string seccompOpt = "--seccomp", seccompFd = std::to_string(filter);
  args.push_back(bwrap.data());
  args.push_back(seccompOpt.data());
  args.push_back(seccompFd.data());
  for (int i = opt.bwrapArgs; i < argc; ++i)
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
  ::close(filter);
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
