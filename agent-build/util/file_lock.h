#pragma once

#include <chrono>
#include <filesystem>
#include <stop_token>

#include "common/unique_fd.h"

namespace imgpipe::build {

// An flock(2) (exclusive, or shared for readers of a cache entry) on a lock file, held for the
// object's lifetime. flock locks die with the process, so a killed build never leaves a cache
// locked. Resource type.
class FileLock {
 public:
  enum class Mode { exclusive, shared };
  // Blocks until the lock is free (checking `stop` every 100 ms; throws Error when stopped).
  FileLock(const std::filesystem::path& path, std::stop_token stop = {},
           Mode mode = Mode::exclusive);
  // Non-blocking: returns an unlocked object when someone else holds it.
  static FileLock tryLock(const std::filesystem::path& path, Mode mode = Mode::exclusive);

  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() = default;  // closing the fd releases the lock

  bool locked() const { return static_cast<bool>(fd_); }

 private:
  FileLock() = default;
  UniqueFd fd_;
};

}  // namespace imgpipe::build
