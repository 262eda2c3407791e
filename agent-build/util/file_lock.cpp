#include "agent-build/util/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <thread>

#include "common/error.h"

namespace imgpipe::build {
namespace {

UniqueFd openLockFile(const std::filesystem::path& path) {
  std::filesystem::create_directories(path.parent_path());
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throwErrno("cannot open lock file " + path.string());
  return fd;
}

}  // namespace

FileLock::FileLock(const std::filesystem::path& path, std::stop_token stop, Mode mode) {
  UniqueFd fd = openLockFile(path);
  const int op = mode == Mode::shared ? LOCK_SH : LOCK_EX;
  while (::flock(fd.get(), op | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) throwErrno("cannot lock " + path.string());
    if (stop.stop_requested()) throw Error("stopped while waiting for the lock " + path.string());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  fd_ = std::move(fd);
}

FileLock FileLock::tryLock(const std::filesystem::path& path, Mode mode) {
  UniqueFd fd = openLockFile(path);
  FileLock lock;
  if (::flock(fd.get(), (mode == Mode::shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
    lock.fd_ = std::move(fd);
  else if (errno != EWOULDBLOCK)
    throwErrno("cannot lock " + path.string());
  return lock;
}

}  // namespace imgpipe::build
