#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "common/unique_fd.h"

namespace imgpipe {

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throwErrno("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void writeFileAtomic(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  // Unique per writer, not only per process: two threads of one agent may write the same
  // cache entry at once, and a shared temp name lets one rename the other's file away. Not the
  // pid alone either: every build child is PID 1 of a namespace of its own, so two builds
  // writing one base cache entry had the same name (BuildParallel saw the rename fail).
  static const std::uint64_t writer = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  static std::atomic<std::uint64_t> counter{0};
  auto tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(writer) + "." +
         std::to_string(counter.fetch_add(1));
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) throwErrno("cannot create " + tmp.string());
  // The umask may have narrowed the mode; the caller asked for exactly this one.
  if (::fchmod(fd.get(), mode) != 0) throwErrno("cannot chmod " + tmp.string());
  std::string_view rest = content;
  while (!rest.empty()) {
    ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::unlink(tmp.c_str());
      throwErrno("cannot write " + tmp.string(), err);
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throwErrno("cannot fsync " + tmp.string(), err);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throwErrno("cannot rename to " + path.string(), err);
  }
  fsyncDirectory(path.parent_path().empty() ? "." : path.parent_path());
}

void fsyncDirectory(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open directory " + dir.string());
  if (::fsync(fd.get()) != 0) throwErrno("cannot fsync directory " + dir.string());
}

std::uint64_t freeBytes(const std::filesystem::path& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) throwErrno("cannot statvfs " + path.string());
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace imgpipe
