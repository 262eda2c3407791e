#include "common/beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "common/fd_io.h"

namespace imgpipe {

UniqueFd openDirectory(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open directory " + dir.string());
  return fd;
}

int openBeneathRaw(int rootFd, std::string_view relative, int flags, mode_t mode) {
  const std::string path(relative);
  if (path.empty() || path.find('\0') != std::string::npos) {
    errno = EINVAL;
    return -1;
  }
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, rootFd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != EINTR && errno != EAGAIN) return -1;
  }
}

UniqueFd openBeneath(int rootFd, std::string_view relative, int flags, mode_t mode,
                     const std::filesystem::path& root) {
  UniqueFd fd(openBeneathRaw(rootFd, relative, flags, mode));
  if (fd) return fd;
  const int err = errno;
  const std::string where = (root.empty() ? std::string("its directory") : root.string());
  if (err == EXDEV || err == ELOOP)
    throw Error("'" + std::string(relative) + "' leads outside " + where +
                " (through '..', an absolute path or a symlink); refused");
  throwErrno("cannot open '" + std::string(relative) + "' in " + where, err);
}

std::string readFileBeneath(const std::filesystem::path& root, std::string_view relative,
                            std::size_t maxBytes) {
  UniqueFd dir = openDirectory(root);
  UniqueFd fd = openBeneath(dir.get(), relative, O_RDONLY | O_NOFOLLOW, 0, root);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throwErrno("cannot stat " + std::string(relative));
  if (!S_ISREG(st.st_mode))
    throw Error("'" + std::string(relative) + "' in " + root.string() + " is not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > maxBytes)
    throw Error("'" + std::string(relative) + "' in " + root.string() + " is " +
                std::to_string(st.st_size) + " bytes, more than the limit of " +
                std::to_string(maxBytes));
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  const ssize_t done = readFully(fd.get(), out.data(), out.size());
  if (done < 0) throwErrno("cannot read '" + std::string(relative) + "' in " + root.string());
  out.resize(static_cast<std::size_t>(done));
  return out;
}

}  // namespace imgpipe
