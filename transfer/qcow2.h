#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace imgpipe::transfer {

// Just enough of the qcow2 format to find where each guest cluster's data lies in the file.
// Compressed qcow2 (`qemu-img convert -c`) stores every cluster deflated on its own and packs
// those blobs back to back, so an image rebuilt with one more package shares most blobs with
// the previous version byte for byte — at other offsets. The delta format in delta.h uses that.

struct Qcow2Cluster {
  std::uint64_t offset = 0;  // in the file
  std::uint32_t length = 0;  // bytes in the file (the exact deflate stream when compressed)
  bool compressed = false;
};

struct Qcow2Layout {
  std::uint32_t clusterBits = 0;
  std::uint32_t clusterSize() const { return 1u << clusterBits; }
  std::uint64_t fileSize = 0;
  std::vector<Qcow2Cluster> clusters;  // data clusters in file order
  // The same clusters in guest order (as `contentsOut` writes them; a host cluster shared by two
  // guest clusters appears twice): cluster i's content is at i x clusterSize in that stream.
  std::vector<Qcow2Cluster> guestOrder;
};

// A qcow2 this code can take apart: version 2 or 3, zlib compression, no encryption, no
// external data file, no extended L2 entries, no backing file. nullopt (with the reason)
// otherwise, or when the file is not a qcow2 at all. Every compressed cluster is inflated to
// find where its deflate stream ends; with `contentsOut`, the decompressed content of every data
// cluster is written there too, in guest order (one pass instead of two).
std::optional<Qcow2Layout> readQcow2Layout(const std::filesystem::path& path, std::string* why,
                                           const std::filesystem::path* contentsOut = nullptr);

// Inflates one cluster (raw deflate, 4 KiB window, as qemu writes it) into `out` (clusterSize).
bool inflateCluster(const std::uint8_t* in, std::size_t inLen, std::uint8_t* out,
                    std::size_t outLen, std::size_t* consumed);
// Deflates one cluster with qemu's parameters (level 6, raw deflate, 4 KiB window, memLevel 9).
// Returns the compressed bytes; empty when the result would not fit below the cluster size
// (qemu then stores the cluster uncompressed).
std::string deflateCluster(const std::uint8_t* in, std::size_t len);

}  // namespace imgpipe::transfer
