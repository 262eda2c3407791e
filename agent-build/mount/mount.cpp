#include "agent-build/mount/mount.h"

#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace imgpipe::build {

Mount::Mount(const std::string& source, const std::filesystem::path& target,
             const std::string& fsType, unsigned long flags, const std::string& data)
    : target_(target) {
  if (::mount(source.c_str(), target.c_str(), fsType.empty() ? nullptr : fsType.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0)
    throwErrno("cannot mount " + source + " on " + target.string() +
               (fsType.empty() ? "" : " (" + fsType + ")"));
  mounted_ = true;
}

Mount Mount::bind(const std::filesystem::path& source, const std::filesystem::path& target,
                  bool readOnly) {
  Mount m(source.string(), target, "", MS_BIND);
  if (readOnly &&
      ::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0)
    throwErrno("cannot make the bind mount " + target.string() + " read-only");
  return m;
}

Mount::Mount(Mount&& other) noexcept
    : target_(std::move(other.target_)), mounted_(std::exchange(other.mounted_, false)) {}

void Mount::unmount() {
  if (!mounted_) return;
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::umount2(target_.c_str(), UMOUNT_NOFOLLOW) == 0) {
      mounted_ = false;
      return;
    }
    if (errno == EINVAL || errno == ENOENT) {  // not mounted any more
      mounted_ = false;
      return;
    }
    if (errno != EBUSY) throwErrno("cannot unmount " + target_.string());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw Error("cannot unmount " + target_.string() + ": still busy after 5 s");
}

Mount::~Mount() {
  if (!mounted_) return;
  try {
    unmount();
  } catch (const std::exception& e) {
    // The build is unwinding anyway; detach lazily so the namespace can go. The build child's
    // private mount namespace guarantees the kernel drops it when the build process exits.
    log::named("mount")->warn("{}; detaching lazily", e.what());
    ::umount2(target_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    mounted_ = false;
  }
}

bool isMountPoint(const std::filesystem::path& path) {
  std::ifstream in("/proc/self/mountinfo");
  // A FUSE mount whose daemon is gone answers every stat with ENOTCONN, and is still a mount
  // point (the one a caller most needs to detach): resolve without throwing, and fall back to
  // the path as written.
  std::error_code ec;
  auto resolved = std::filesystem::weakly_canonical(path, ec);
  if (ec) resolved = std::filesystem::absolute(path, ec).lexically_normal();
  const std::string want = resolved.string();
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mountPoint;
    fields >> id >> parent >> devno >> root >> mountPoint;
    if (mountPoint == want) return true;
  }
  return false;
}

}  // namespace imgpipe::build
