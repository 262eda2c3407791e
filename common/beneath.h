#pragma once

// Opening files beneath a directory that no path can escape: openat2(2) with RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS. "..", an absolute path or a symlink anywhere on
// the way (one planted by a hostile peer, a definition or an image) fails with EXDEV or ELOOP
// instead of reaching outside. Validation of names comes first everywhere; this is the layer that
// still holds when a validation has a bug.

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/unique_fd.h"

namespace imgpipe {

// An O_PATH descriptor of `dir`, to resolve paths beneath. Throws Error naming the directory.
UniqueFd openDirectory(const std::filesystem::path& dir);

// openat2 beneath `rootFd`; -1 with errno set when it cannot be opened (or would escape).
int openBeneathRaw(int rootFd, std::string_view relative, int flags, mode_t mode = 0);
// As above; throws Error naming `root` and `relative` (and "outside" for an escape).
UniqueFd openBeneath(int rootFd, std::string_view relative, int flags, mode_t mode = 0,
                     const std::filesystem::path& rootForMessages = {});

// Reads `relative` beneath `root`, refusing files larger than `maxBytes` (named in the error).
std::string readFileBeneath(const std::filesystem::path& root, std::string_view relative,
                            std::size_t maxBytes);

}  // namespace imgpipe
