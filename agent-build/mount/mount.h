#pragma once

#include <sys/mount.h>

#include <filesystem>
#include <string>

namespace imgpipe::build {

// One mounted filesystem (or bind mount), unmounted in the destructor. Resource type.
//
// Unmounting retries briefly on EBUSY (a process that has just exited may still be releasing
// it) and then detaches lazily so a build never hangs in teardown; unmount() is the checked
// variant for the success path, where "still busy" is an error worth reporting.
class Mount {
 public:
  Mount(const std::string& source, const std::filesystem::path& target, const std::string& fsType,
        unsigned long flags = 0, const std::string& data = {});
  static Mount bind(const std::filesystem::path& source, const std::filesystem::path& target,
                    bool readOnly = false);
  ~Mount();
  Mount(Mount&& other) noexcept;
  Mount& operator=(Mount&&) = delete;
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  const std::filesystem::path& target() const { return target_; }
  // Unmounts now; throws Error when the filesystem stays busy.
  void unmount();

 private:
  Mount() = default;
  std::filesystem::path target_;
  bool mounted_ = false;
};

// Whether `path` is a mount point in this process's mount namespace.
bool isMountPoint(const std::filesystem::path& path);

}  // namespace imgpipe::build
