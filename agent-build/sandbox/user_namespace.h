#pragma once

// The user namespace every sandbox of this agent runs in: the sandbox's users 0..65535 are an
// unprivileged range of host users (`build.sandbox_uid_base`), as systemd-nspawn's
// `--private-users=pick` does. Root in a sandbox is root of that namespace only: towards the host
// kernel it is a user nobody else is, so a sysctl, a core_pattern, a device, a keyring or a file
// of the host answers as to any unprivileged user. What the sandbox must own (the image it
// customizes, the controller's work dir) is shown to it through idmapped mounts, so that files
// it writes land on disk with the image's own owners (0, 42, ...), not the host range's.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "common/unique_fd.h"

namespace imgpipe::build {

// A range of host user and group ids. Value type.
struct UidRange {
  // The default keeps clear of what Debian hands out (/etc/subuid starts at 100000 and grows by
  // 65536 a user) and of systemd-nspawn's `pick` range (0x00080000-0x6FFEFFFF).
  static constexpr std::uint32_t kDefaultBase = 0x70000000U;
  static constexpr std::uint32_t kSize = 65536;
  std::uint32_t base = kDefaultBase;

  uid_t hostRoot() const { return base; }
  // An owner no sandbox's idmapped view maps (the first id past the range, on disk): a file owned
  // by it reads as any other user's, and its owner's rights — writing, chmod, chown — belong to
  // nobody inside. What the agent lends a sandbox without letting it change (the package store).
  static constexpr uid_t kUnmappedOwner = kSize;
};

// Throws Error naming the key when `base` leaves no room for the range, or would map host root.
void checkUidRange(const UidRange& range, const std::string& key);

// A new user namespace mapping 0..65535 to the range (uids and gids alike), made by a short-lived
// child of this process; the returned descriptor keeps it. Throws Error with the errno.
UniqueFd makeUserNamespace(const UidRange& range);

// Mounts an idmapped clone of the tree at `path` (with what is mounted beneath it) on `target`,
// created as a directory or file like `path`, in this process's mount namespace (which must be
// private): the same files, owned as `userns` sees them. Throws Error naming the path and the
// filesystem when the kernel refuses (a filesystem without idmapped mounts).
void idmapOnto(const std::filesystem::path& path, const std::filesystem::path& target, int userns);

}  // namespace imgpipe::build
