#include "agent-build/sandbox/user_namespace.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

void writeProcFile(pid_t pid, const char* name, const std::string& text) {
  const auto path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd f(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!f || ::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throwErrno("sandbox: writing " + path);
}

}  // namespace

void checkUidRange(const UidRange& range, const std::string& key) {
  if (range.base == 0 || range.base > 0xFFFFFFFFU - UidRange::kSize)
    throw Error(key + ": " + std::to_string(range.base) +
                " leaves no room for 65536 host ids above it (and 0 would map host root)");
}

UniqueFd makeUserNamespace(const UidRange& range) {
  // The child unshares and waits; the parent, root in the host's namespace, writes the maps (a
  // process cannot map ids it does not hold into a namespace of its own) and keeps the namespace
  // by its descriptor. setgroups stays allowed: apt drops to _apt with setgroups().
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throwErrno("sandbox: pipe");
  UniqueFd readEnd(ready[0]), writeEnd(ready[1]);
  const pid_t child = ::fork();
  if (child < 0) throwErrno("sandbox: fork");
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char ok = ::unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    (void)!::write(writeEnd.get(), &ok, 1);
    ::pause();
    ::_exit(0);
  }
  writeEnd.reset();
  char ok = 'n';
  const bool got = ::read(readEnd.get(), &ok, 1) == 1;
  auto reap = [&] {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  };
  if (!got || ok != 'y') {
    reap();
    throw Error("sandbox: the kernel refused a new user namespace (user.max_user_namespaces?)");
  }
  UniqueFd ns;
  try {
    const auto map = "0 " + std::to_string(range.base) + " " + std::to_string(UidRange::kSize);
    writeProcFile(child, "uid_map", map);
    writeProcFile(child, "gid_map", map);
    const auto path = "/proc/" + std::to_string(child) + "/ns/user";
    ns = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) throwErrno("sandbox: open " + path);
  } catch (...) {
    reap();
    throw;
  }
  reap();
  return ns;
}

void idmapOnto(const fs::path& path, const fs::path& target, int userns) {
  UniqueFd tree(static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, path.c_str(),
                                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)));
  if (!tree) throwErrno("sandbox: open_tree " + path.string());
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<std::uint64_t>(userns);
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                sizeof attr) != 0) {
    const int e = errno;
    struct statfs st {};
    ::statfs(path.c_str(), &st);
    char type[32];
    std::snprintf(type, sizeof type, "0x%lx", static_cast<unsigned long>(st.f_type));
    errno = e;
    throwErrno("sandbox: an idmapped mount of " + path.string() + " (filesystem type " + type +
               ", or one mounted beneath it) is refused; the sandbox needs a filesystem with "
               "idmapped mounts (ext4, xfs, btrfs, tmpfs) for its work dir");
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::create_directory(target, ec);
  } else {
    UniqueFd f(::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  }
  if (::syscall(SYS_move_mount, tree.get(), "", AT_FDCWD, target.c_str(),
                MOVE_MOUNT_F_EMPTY_PATH) != 0)
    throwErrno("sandbox: mounting the idmapped view of " + path.string() + " on " +
               target.string());
}

}  // namespace imgpipe::build
