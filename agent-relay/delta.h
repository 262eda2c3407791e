#pragma once

#include <cstdint>
#include <filesystem>

namespace imgpipe::relay {

// librsync, file to file, with every librsync object and FILE owned by RAII wrappers.
//
// Signature of the basis -> delta of the target against that signature -> patch of the basis
// with the delta. The delta stream is compressed with xz: its literal runs are qcow2 metadata and
// changed clusters, and xz takes a little more off them at a cost of well under a second per
// hundred MB of image.

struct DeltaStats {
  std::uint64_t signatureBytes = 0;
  std::uint64_t rawDeltaBytes = 0;  // librsync's delta stream
  std::uint64_t deltaBytes = 0;     // what is stored and sent (compressed)
  std::uint64_t literalBytes = 0;
  std::uint64_t matchedBytes = 0;
};

// strongLen 0: librsync's minimum safe length for the basis size.
DeltaStats makeSignature(const std::filesystem::path& basis, const std::filesystem::path& sigOut,
                         std::uint32_t blockLen, std::uint32_t strongLen = 0);
DeltaStats makeDelta(const std::filesystem::path& signature, const std::filesystem::path& target,
                     const std::filesystem::path& deltaOut, int xzPreset = 6);
// Writes the patched result to `out` (which may be a preallocated file: it is overwritten from
// offset 0, not truncated).
void applyDelta(const std::filesystem::path& basis, const std::filesystem::path& delta,
                const std::filesystem::path& out);

// xz, file to file (liblzma), for the delta stream.
void xzCompress(const std::filesystem::path& in, const std::filesystem::path& out, int preset);
void xzDecompress(const std::filesystem::path& in, const std::filesystem::path& out);

}  // namespace imgpipe::relay
