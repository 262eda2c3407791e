#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

namespace imgpipe::transfer {

// A directory of the artifact store, held open, and every file operation beneath it. Paths are
// relative and resolved by the kernel with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS) from the directory's fd: an absolute path, a ".." that climbs out, or a
// symlink anywhere on the way (planted by whoever) fails with an error instead of leaving the
// directory. Identifiers are checked before they get here (protocol/ids.h); this is what still
// holds when such a check has a bug. Names created, renamed or removed are single components
// opened the same way. Resource type (owns the directory fd).
class StoreDir {
 public:
  // Opens `root` (created when missing), which is trusted: it comes from the operator's config.
  explicit StoreDir(const std::filesystem::path& root);
  StoreDir(StoreDir&&) noexcept = default;
  StoreDir& operator=(StoreDir&&) noexcept = default;
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;

  // The subdirectory `rel`, opened beneath this one (created first when `create`).
  StoreDir sub(std::string_view rel, bool create = false) const;

  // openat2 beneath this directory; throws Error naming the path (EXDEV: it would leave the
  // directory; ELOOP: a symlink on the way). O_CLOEXEC is always added.
  UniqueFd open(std::string_view rel, int flags, mode_t mode = 0) const;
  // Like open, but -1 with errno instead of throwing.
  int tryOpen(std::string_view rel, int flags, mode_t mode = 0) const;

  bool exists(std::string_view rel) const;
  bool isDirectory(std::string_view rel) const;
  void mkdir(std::string_view rel, mode_t mode = 0755) const;  // EEXIST is fine
  void rename(std::string_view from, std::string_view to) const;
  void unlink(std::string_view rel) const;  // a missing file is fine
  // Removes `rel` and everything beneath it, never following a symlink (a link is removed, not
  // what it points to). A missing `rel` is fine.
  void removeTree(std::string_view rel) const;
  // The names in directory `rel` ("" = this one), without "." and "..".
  std::vector<std::string> list(std::string_view rel = {}) const;

  std::string readFile(std::string_view rel) const;
  // Written under a temporary name, synced, renamed over `rel`.
  void writeFileAtomic(std::string_view rel, std::string_view content, mode_t mode = 0644) const;
  // Hard-links `source` (an absolute path outside the store, trusted: a finished build) to
  // `rel`, or copies it when it is on another filesystem.
  void linkOrCopyIn(const std::filesystem::path& source, std::string_view rel) const;
  void sync() const;

  int fd() const { return fd_.get(); }
  // For messages and for code that needs a path (librsync, the glance upload): the directory as
  // it was opened. Never used to open anything here.
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path path(std::string_view rel) const { return path_ / rel; }

 private:
  StoreDir(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  // The directory holding the last component of `rel`, and that component (checked to be a
  // plain name: not empty, ".", ".." and without '/').
  std::pair<UniqueFd, std::string> parentOf(std::string_view rel) const;

  UniqueFd fd_;
  std::filesystem::path path_;
};

// A directory staged beneath a StoreDir, removed (with everything in it) unless release()d: what
// a failed open or import left is gone at once, not at the next start. Resource type.
class StagedDir {
 public:
  StagedDir(const StoreDir& parent, std::string name);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::string& name() const { return name_; }
  const StoreDir& dir() const { return dir_; }
  // Renames it to `to` beneath the parent; from then on it is no longer removed.
  void commit(std::string_view to);

 private:
  const StoreDir& parent_;
  std::string name_;
  StoreDir dir_;
  bool committed_ = false;
};

}  // namespace imgpipe::transfer
