#include "agent-build/util/image_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <sstream>

#include "common/error.h"

namespace imgpipe::build {
namespace {

int openat2Fd(int dirfd, const std::string& path, std::uint64_t flags, std::uint64_t mode = 0) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, dirfd, path.empty() ? "." : path.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);
  }
}

std::string joinParts(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i)
    out += (i ? "/" : "") + parts[i];
  return out;
}

void removeAt(int dirfd, const std::string& name, const std::string& shownPath) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throwErrno("cannot stat " + shownPath);
  }
  if (S_ISDIR(st.st_mode)) {
    UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throwErrno("cannot open " + shownPath);
    int dupFd = ::dup(sub.get());
    DIR* d = ::fdopendir(dupFd);
    if (d == nullptr) {
      ::close(dupFd);
      throwErrno("cannot list " + shownPath);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : names)
      removeAt(sub.get(), n, shownPath + "/" + n);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      throwErrno("cannot remove " + shownPath);
  } else if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
    throwErrno("cannot remove " + shownPath);
  }
}

// Parses name:x:id:... files (/etc/passwd, /etc/group).
std::optional<unsigned> lookupId(const std::optional<std::string>& file, const std::string& name) {
  if (!file) return std::nullopt;
  std::istringstream in(*file);
  for (std::string line; std::getline(in, line);) {
    auto c1 = line.find(':');
    if (c1 == std::string::npos || line.substr(0, c1) != name) continue;
    auto c2 = line.find(':', c1 + 1);
    auto c3 = line.find(':', c2 + 1);
    if (c2 == std::string::npos || c3 == std::string::npos) continue;
    return static_cast<unsigned>(std::stoul(line.substr(c2 + 1, c3 - c2 - 1)));
  }
  return std::nullopt;
}

bool isNumeric(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

std::vector<std::string> splitImagePath(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/')
      ++i;
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) {
      auto part = path.substr(i, j - i);
      if (part != ".") parts.emplace_back(part);
    }
    i = j;
  }
  return parts;
}

ImageFs::ImageFs(const std::filesystem::path& root) : root_(root) {
  rootFd_.reset(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!rootFd_) throwErrno("cannot open image root " + root.string());
}

std::filesystem::path ImageFs::hostPath(std::string_view imagePath) const {
  return root_ / joinParts(splitImagePath(imagePath), splitImagePath(imagePath).size());
}

std::pair<UniqueFd, std::string> ImageFs::openParent(std::string_view path, bool create) const {
  auto parts = splitImagePath(path);
  if (parts.empty() || parts.back() == "..")
    throw Error("not a file path in the image: '" + std::string(path) + "'");
  if (create) {
    std::string parent = joinParts(parts, parts.size() - 1);
    const_cast<ImageFs*>(this)->mkdirs(parent);
  }
  std::string parent = joinParts(parts, parts.size() - 1);
  UniqueFd fd(openat2Fd(rootFd_.get(), parent, O_PATH | O_DIRECTORY));
  if (!fd) throwErrno("cannot open /" + parent + " in the image");
  return {std::move(fd), parts.back()};
}

bool ImageFs::exists(std::string_view path) const {
  return lstat(path).has_value();
}

std::optional<struct stat> ImageFs::lstat(std::string_view path) const {
  auto parts = splitImagePath(path);
  if (parts.empty()) {
    struct stat st {};
    if (::fstat(rootFd_.get(), &st) != 0) return std::nullopt;
    return st;
  }
  UniqueFd parent(
      openat2Fd(rootFd_.get(), joinParts(parts, parts.size() - 1), O_PATH | O_DIRECTORY));
  if (!parent) return std::nullopt;
  struct stat st {};
  if (::fstatat(parent.get(), parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return std::nullopt;
  return st;
}

std::optional<std::string> ImageFs::readLink(std::string_view path) const {
  auto parts = splitImagePath(path);
  if (parts.empty()) return std::nullopt;
  UniqueFd parent(
      openat2Fd(rootFd_.get(), joinParts(parts, parts.size() - 1), O_PATH | O_DIRECTORY));
  if (!parent) return std::nullopt;
  char buf[4096];
  ssize_t n = ::readlinkat(parent.get(), parts.back().c_str(), buf, sizeof buf);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

std::optional<std::string> ImageFs::readFile(std::string_view path) const {
  auto parts = splitImagePath(path);
  UniqueFd fd(openat2Fd(rootFd_.get(), joinParts(parts, parts.size()), O_RDONLY));
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throwErrno("cannot read " + std::string(path) + " in the image");
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("cannot read " + std::string(path) + " in the image");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::vector<std::string> ImageFs::list(std::string_view dir) const {
  auto parts = splitImagePath(dir);
  int fd = openat2Fd(rootFd_.get(), joinParts(parts, parts.size()), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return {};
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return {};
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void ImageFs::mkdirs(std::string_view path, mode_t mode) {
  auto parts = splitImagePath(path);
  for (size_t i = 1; i <= parts.size(); ++i) {
    std::string sub = joinParts(parts, i);
    UniqueFd probe(openat2Fd(rootFd_.get(), sub, O_PATH | O_DIRECTORY));
    if (probe) continue;
    if (errno != ENOENT) throwErrno("cannot open /" + sub + " in the image");
    UniqueFd parent(openat2Fd(rootFd_.get(), joinParts(parts, i - 1), O_PATH | O_DIRECTORY));
    if (!parent) throwErrno("cannot open the parent of /" + sub + " in the image");
    if (::mkdirat(parent.get(), parts[i - 1].c_str(), mode) != 0 && errno != EEXIST)
      throwErrno("cannot create /" + sub + " in the image");
    // mkdir is subject to the umask; the image gets exactly the mode asked for.
    UniqueFd made(openat2Fd(rootFd_.get(), sub, O_RDONLY | O_DIRECTORY));
    if (made) (void)::fchmod(made.get(), mode);
  }
}

void ImageFs::writeFile(std::string_view path, std::string_view content, mode_t mode, uid_t uid,
                        gid_t gid) {
  auto [parent, name] = openParent(path, true);
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::string tmp = "." + name + ".imgpipe-" + std::to_string(rng() % 1000000000);
  UniqueFd fd(::openat(parent.get(), tmp.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throwErrno("cannot create " + std::string(path) + " in the image");
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::unlinkat(parent.get(), tmp.c_str(), 0);
    throwErrno(what + " " + std::string(path) + " in the image", err);
  };
  std::string_view rest = content;
  while (!rest.empty()) {
    ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write");
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  // Only root can give a file away; the agent runs as root, unprivileged unit tests do not.
  if (::geteuid() == 0 && ::fchown(fd.get(), uid, gid) != 0) fail("cannot chown");
  if (::fchmod(fd.get(), mode) != 0) fail("cannot chmod");
  fd.reset();
  if (::renameat(parent.get(), tmp.c_str(), parent.get(), name.c_str()) != 0)
    fail("cannot rename into");
}

void ImageFs::symlink(std::string_view target, std::string_view path) {
  auto [parent, name] = openParent(path, true);
  if (::unlinkat(parent.get(), name.c_str(), 0) != 0 && errno != ENOENT)
    throwErrno("cannot replace " + std::string(path) + " in the image");
  if (::symlinkat(std::string(target).c_str(), parent.get(), name.c_str()) != 0)
    throwErrno("cannot create symlink " + std::string(path) + " in the image");
}

bool ImageFs::remove(std::string_view path) {
  auto parts = splitImagePath(path);
  if (parts.empty()) throw Error("refusing to remove the image root");
  UniqueFd parent(
      openat2Fd(rootFd_.get(), joinParts(parts, parts.size() - 1), O_PATH | O_DIRECTORY));
  if (!parent) return false;
  if (::unlinkat(parent.get(), parts.back().c_str(), 0) == 0) return true;
  if (errno == ENOENT) return false;
  if (errno == EISDIR && ::unlinkat(parent.get(), parts.back().c_str(), AT_REMOVEDIR) == 0)
    return true;
  throwErrno("cannot remove " + std::string(path) + " in the image");
}

void ImageFs::removeTree(std::string_view path) {
  auto parts = splitImagePath(path);
  if (parts.empty()) throw Error("refusing to remove the image root");
  UniqueFd parent(
      openat2Fd(rootFd_.get(), joinParts(parts, parts.size() - 1), O_PATH | O_DIRECTORY));
  if (!parent) return;
  removeAt(parent.get(), parts.back(), "/" + joinParts(parts, parts.size()));
}

void ImageFs::truncate(std::string_view path) {
  auto parts = splitImagePath(path);
  UniqueFd fd(
      openat2Fd(rootFd_.get(), joinParts(parts, parts.size()), O_WRONLY | O_TRUNC | O_NOFOLLOW));
  if (!fd && errno != ENOENT) throwErrno("cannot truncate " + std::string(path) + " in the image");
}

std::vector<std::string> ImageFs::glob(std::string_view pattern) const {
  std::vector<std::string> current = {""};
  for (const auto& part : splitImagePath(pattern)) {
    std::vector<std::string> next;
    const bool wild = part.find_first_of("*?[") != std::string::npos;
    for (const auto& dir : current) {
      if (!wild) {
        if (exists(dir + "/" + part)) next.push_back(dir + "/" + part);
        continue;
      }
      for (const auto& name : list(dir.empty() ? "/" : dir))
        if (::fnmatch(part.c_str(), name.c_str(), 0) == 0) next.push_back(dir + "/" + name);
    }
    current = std::move(next);
    if (current.empty()) break;
  }
  std::sort(current.begin(), current.end());
  if (current.size() == 1 && current[0].empty()) current.clear();
  return current;
}

uid_t ImageFs::userId(const std::string& name) const {
  if (isNumeric(name)) return static_cast<uid_t>(std::stoul(name));
  if (auto id = lookupId(readFile("/etc/passwd"), name)) return *id;
  throw Error("user '" + name + "' does not exist in the image's /etc/passwd");
}

gid_t ImageFs::groupId(const std::string& name) const {
  if (isNumeric(name)) return static_cast<gid_t>(std::stoul(name));
  if (auto id = lookupId(readFile("/etc/group"), name)) return *id;
  throw Error("group '" + name + "' does not exist in the image's /etc/group");
}

}  // namespace imgpipe::build
