#pragma once

// Whole reads and writes on file descriptors, written once: every caller used to loop over
// short reads and EINTR by itself.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace imgpipe {

// Reads until `n` bytes are in `buf` or the file ends (EINTR and short reads retried). Returns
// how many bytes it read (less than `n` only at the end of the file), or -1 with errno set.
ssize_t readFully(int fd, void* buf, std::size_t n);
// The same at `offset`, leaving the file position alone.
ssize_t preadFully(int fd, void* buf, std::size_t n, std::uint64_t offset);
// Writes all `n` bytes at `offset`. False with errno set (ENOSPC for a full disk).
bool pwriteFully(int fd, const void* buf, std::size_t n, std::uint64_t offset);

// Bytes the file really occupies on disk (st_blocks): sparse files take less than their size.
// 0 when it cannot be stat'ed.
std::uint64_t allocatedBytes(int fd);

}  // namespace imgpipe
