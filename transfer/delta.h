#pragma once

#include <cstdint>
#include <filesystem>

#include "common/error.h"

namespace imgpipe::transfer {

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

// The qcow2-aware delta, for compressed qcow2 images (measured on real rebuilt images: about a
// fifth of the bytes of a plain rdiff over the compressed file; docs/architecture.md has the
// numbers). The target file is described as a sequence of segments in file order:
//   COPY     a compressed cluster whose deflated bytes also occur in the basis (most of them),
//   DEFLATE  a cluster the basis lacks, sent as its *decompressed* content and deflated again
//            by the receiver with qemu's own parameters (the sender checks, cluster by cluster,
//            that this reproduces the exact bytes; a cluster that does not is sent as is),
//   RAW      an uncompressed data cluster, sent as its content,
//   LIT      everything else (header, L1/L2 and refcount tables, padding), sent as is.
// The contents of DEFLATE/RAW clusters are sent as an rdiff delta against the decompressed
// clusters of the basis — data moved between clusters by a rebuild is found there at 4 KiB
// block granularity, which deflated clusters hide. All three streams are xz-compressed.
// The patched result is verified chunk by chunk against the target's manifest like anything
// else, so an unexpected difference costs only the chunks it touches.
class DeltaUnsupported : public Error {
 public:
  using Error::Error;
};

// Throws DeltaUnsupported when either file is not a qcow2 this format handles (zstd, encrypted,
// backing files, different cluster sizes).
DeltaStats makeQcow2Delta(const std::filesystem::path& basis, const std::filesystem::path& target,
                          const std::filesystem::path& deltaOut,
                          const std::filesystem::path& workDir, std::uint32_t blockLen,
                          int xzPreset = 6);
void applyQcow2Delta(const std::filesystem::path& basis, const std::filesystem::path& delta,
                     const std::filesystem::path& out, const std::filesystem::path& workDir);

// xz, file to file (liblzma), for the delta stream.
void xzCompress(const std::filesystem::path& in, const std::filesystem::path& out, int preset);
void xzDecompress(const std::filesystem::path& in, const std::filesystem::path& out);

}  // namespace imgpipe::transfer
