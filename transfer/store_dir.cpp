#include "transfer/store_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/error.h"
#include "protocol/ids.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
namespace {

constexpr std::uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

int openBeneath(int dirfd, std::string_view rel, int flags, mode_t mode) {
  const std::string path(rel.empty() ? "." : rel);
  if (path.find('\0') != std::string::npos) {
    errno = EINVAL;
    return -1;
  }
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = kResolve;
  for (;;) {
    const long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    // EAGAIN: a concurrent rename somewhere in the tree made the kernel unsure; just retry.
    if (fd < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return static_cast<int>(fd);
  }
}

// What errno says about a path the kernel refused to resolve.
std::string why(std::string_view /*rel*/) {
  switch (errno) {
    case EXDEV:
      return " (it would leave the store)";
    case ELOOP:
      return " (a symlink on the way; the store follows none)";
    default:
      return "";
  }
}

void removeEntries(int dirfd, const fs::path& shown);

// Removes `name` in `dirfd`: a directory with what it holds, anything else (a symlink too) as
// itself.
void removeAt(int dirfd, const std::string& name, const fs::path& shown) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) throwErrno("cannot remove " + (shown / name).string());
  UniqueFd sub(openBeneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0));
  if (!sub) {
    if (errno == ENOENT) return;
    throwErrno("cannot open " + (shown / name).string() + why(name));
  }
  removeEntries(sub.get(), shown / name);
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    throwErrno("cannot remove " + (shown / name).string());
}

std::vector<std::string> entries(int dirfd, const fs::path& shown) {
  // fdopendir takes the fd over: give it a duplicate of its own, positioned at the start.
  int dup = openBeneath(dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
  if (dup < 0) throwErrno("cannot read " + shown.string());
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    throwErrno("cannot read " + shown.string());
  }
  std::vector<std::string> out;
  while (auto* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  ::closedir(d);
  return out;
}

void removeEntries(int dirfd, const fs::path& shown) {
  for (const auto& name : entries(dirfd, shown))
    removeAt(dirfd, name, shown);
}

}  // namespace

StoreDir::StoreDir(const fs::path& root) : path_(root) {
  fs::create_directories(root);
  fd_.reset(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd_) throwErrno("cannot open the store directory " + root.string());
}

StoreDir StoreDir::sub(std::string_view rel, bool create) const {
  if (create) mkdir(rel);
  UniqueFd fd(openBeneath(fd_.get(), rel, O_RDONLY | O_DIRECTORY, 0));
  if (!fd) throwErrno("cannot open directory " + path(rel).string() + why(rel));
  return StoreDir(std::move(fd), path(rel));
}

int StoreDir::tryOpen(std::string_view rel, int flags, mode_t mode) const {
  return openBeneath(fd_.get(), rel, flags, mode);
}

UniqueFd StoreDir::open(std::string_view rel, int flags, mode_t mode) const {
  UniqueFd fd(openBeneath(fd_.get(), rel, flags, mode));
  if (!fd) throwErrno("cannot open " + path(rel).string() + why(rel));
  return fd;
}

bool StoreDir::exists(std::string_view rel) const {
  UniqueFd fd(openBeneath(fd_.get(), rel, O_PATH, 0));
  return static_cast<bool>(fd);
}

bool StoreDir::isDirectory(std::string_view rel) const {
  UniqueFd fd(openBeneath(fd_.get(), rel, O_PATH | O_DIRECTORY, 0));
  return static_cast<bool>(fd);
}

std::pair<UniqueFd, std::string> StoreDir::parentOf(std::string_view rel) const {
  const auto slash = rel.rfind('/');
  const std::string_view dir = slash == rel.npos ? std::string_view{} : rel.substr(0, slash);
  std::string name(slash == rel.npos ? rel : rel.substr(slash + 1));
  if (name.empty() || name == "." || name == ".." || name.find('\0') != std::string::npos)
    throw Error("store path '" + ids::printable(rel) + "' under " + path_.string() +
                " does not end in a file name");
  UniqueFd parent(openBeneath(fd_.get(), dir, O_RDONLY | O_DIRECTORY, 0));
  if (!parent) throwErrno("cannot open directory " + path(dir).string() + why(dir));
  return {std::move(parent), std::move(name)};
}

void StoreDir::mkdir(std::string_view rel, mode_t mode) const {
  auto [parent, name] = parentOf(rel);
  if (::mkdirat(parent.get(), name.c_str(), mode) != 0 && errno != EEXIST)
    throwErrno("cannot create directory " + path(rel).string());
}

void StoreDir::rename(std::string_view from, std::string_view to) const {
  auto [fromDir, fromName] = parentOf(from);
  auto [toDir, toName] = parentOf(to);
  if (::renameat(fromDir.get(), fromName.c_str(), toDir.get(), toName.c_str()) != 0)
    throwErrno("cannot rename " + path(from).string() + " to " + path(to).string());
}

void StoreDir::unlink(std::string_view rel) const {
  auto [parent, name] = parentOf(rel);
  if (::unlinkat(parent.get(), name.c_str(), 0) != 0 && errno != ENOENT)
    throwErrno("cannot remove " + path(rel).string());
}

void StoreDir::removeTree(std::string_view rel) const {
  if (rel.empty()) {
    removeEntries(fd_.get(), path_);
    return;
  }
  auto [parent, name] = parentOf(rel);
  const auto slash = rel.rfind('/');
  removeAt(parent.get(), name, slash == rel.npos ? path_ : path(rel.substr(0, slash)));
}

std::vector<std::string> StoreDir::list(std::string_view rel) const {
  if (rel.empty()) return entries(fd_.get(), path_);
  return entries(sub(rel).fd(), path(rel));
}

std::string StoreDir::readFile(std::string_view rel) const {
  UniqueFd fd = open(rel, O_RDONLY);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("cannot read " + path(rel).string());
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

void StoreDir::writeFileAtomic(std::string_view rel, std::string_view content, mode_t mode) const {
  static std::atomic<std::uint64_t> counter{0};
  // Not a structured binding: the failure lambda below captures the parent (clang 14 cannot
  // capture bindings).
  const auto parentAndName = parentOf(rel);
  const UniqueFd& parent = parentAndName.first;
  const std::string& name = parentAndName.second;
  // A dot name: what a crash leaves is swept with the other dot names at load.
  const std::string tmp =
      "." + name + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  UniqueFd fd(openBeneath(parent.get(), tmp, O_WRONLY | O_CREAT | O_EXCL, mode));
  if (!fd) throwErrno("cannot create " + path(rel).string() + ".tmp" + why(tmp));
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::unlinkat(parent.get(), tmp.c_str(), 0);
    throwErrno(what + " " + path(rel).string(), err);
  };
  if (::fchmod(fd.get(), mode) != 0) fail("cannot chmod");
  std::string_view rest = content;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write");
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd.get()) != 0) fail("cannot sync");
  if (::renameat(parent.get(), tmp.c_str(), parent.get(), name.c_str()) != 0) fail("cannot rename");
}

void StoreDir::linkOrCopyIn(const fs::path& source, std::string_view rel) const {
  auto [parent, name] = parentOf(rel);
  if (::linkat(AT_FDCWD, source.c_str(), parent.get(), name.c_str(), 0) == 0) return;
  if (errno != EXDEV && errno != EPERM && errno != EMLINK)
    throwErrno("cannot link " + source.string() + " to " + path(rel).string());
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throwErrno("cannot open " + source.string());
  UniqueFd out(openBeneath(parent.get(), name, O_WRONLY | O_CREAT | O_EXCL, 0644));
  if (!out) throwErrno("cannot create " + path(rel).string() + why(name));
  // copy_file_range shares extents where the filesystem can; since Linux 5.19 it refuses two
  // filesystems of different types (EXDEV: a store on tmpfs or its own disk), and some
  // filesystems do not implement it: sendfile copies through the page cache instead.
  bool plain = false;
  for (;;) {
    const ssize_t n = plain ? ::sendfile(out.get(), in.get(), nullptr, 1 << 30)
                            : ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (!plain && (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
        plain = true;
        continue;
      }
      throwErrno("cannot copy " + source.string() + " to " + path(rel).string());
    }
    if (n == 0) return;
  }
}

void StoreDir::sync() const {
  if (::fsync(fd_.get()) != 0) throwErrno("cannot sync " + path_.string());
}

// --- StagedDir --------------------------------------------------------------------------------

namespace {
StoreDir freshDir(const StoreDir& parent, const std::string& name) {
  parent.removeTree(name);  // what an earlier attempt under this name left
  parent.mkdir(name);
  return parent.sub(name);
}
}  // namespace

StagedDir::StagedDir(const StoreDir& parent, std::string name)
    : parent_(parent), name_(std::move(name)), dir_(freshDir(parent_, name_)) {}

StagedDir::~StagedDir() {
  if (committed_) return;
  try {
    parent_.removeTree(name_);
  } catch (const std::exception& e) {
    spdlog::warn("cannot remove {}: {}", parent_.path(name_).string(), e.what());
  }
}

void StagedDir::commit(std::string_view to) {
  parent_.rename(name_, to);
  committed_ = true;
}

}  // namespace imgpipe::transfer
