#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

namespace imgpipe::build {

// File access inside a mounted image, as if the image's root were "/". The image is untrusted
// input: an absolute symlink such as /etc/motd -> /etc/shadow must resolve to the image's
// /etc/shadow, not the agent's. Every path is resolved with openat2(RESOLVE_IN_ROOT) against a
// directory fd of the image root, and the last component is never followed when replaced or
// removed. Resource type: owns that directory fd.
class ImageFs {
 public:
  explicit ImageFs(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }
  // The host path of an image path, for commands that take paths (never for writing).
  std::filesystem::path hostPath(std::string_view imagePath) const;

  bool exists(std::string_view path) const;  // the entry itself (a dangling symlink exists)
  std::optional<struct stat> lstat(std::string_view path) const;
  std::optional<std::string> readLink(std::string_view path) const;
  // Follows symlinks inside the image; nullopt when missing.
  std::optional<std::string> readFile(std::string_view path) const;
  std::vector<std::string> list(std::string_view dir) const;  // names; empty when missing

  // Replaces `path` atomically (temp file + rename, so a symlink there is replaced, not
  // followed); creates missing parent directories (0755, root).
  void writeFile(std::string_view path, std::string_view content, mode_t mode = 0644, uid_t uid = 0,
                 gid_t gid = 0);
  void mkdirs(std::string_view path, mode_t mode = 0755);
  void symlink(std::string_view target, std::string_view path);  // replaces what is there
  bool remove(std::string_view path);                            // file, symlink or empty dir
  void removeTree(std::string_view path);                        // no-op when missing
  void truncate(std::string_view path);  // a regular file, in place (owner and mode kept)

  // Image paths matching a shell-style pattern such as /home/*/.bash_history (fnmatch per path
  // component; '*' matches hidden names too). Sorted; empty when nothing matches.
  std::vector<std::string> glob(std::string_view pattern) const;

  // uid/gid of a user or group name from the image's /etc/passwd and /etc/group (numeric ids
  // pass through); throws Error naming the missing name.
  uid_t userId(const std::string& name) const;
  gid_t groupId(const std::string& name) const;

 private:
  // The directory containing `path` (resolved in the root) and the last component.
  std::pair<UniqueFd, std::string> openParent(std::string_view path, bool create) const;

  std::filesystem::path root_;
  UniqueFd rootFd_;
};

// Splits "a/b/c" style image paths; leading slashes ignored.
std::vector<std::string> splitImagePath(std::string_view path);

}  // namespace imgpipe::build
