#include "transfer/qcow2.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/fd_io.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
namespace {

std::uint64_t be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = v << 8 | p[i];
  return v;
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

bool preadExact(int fd, void* buf, size_t n, std::uint64_t off) {
  return preadFully(fd, buf, n, off) == static_cast<ssize_t>(n);
}

}  // namespace

bool inflateCluster(const std::uint8_t* in, std::size_t inLen, std::uint8_t* out,
                    std::size_t outLen, std::size_t* consumed) {
  z_stream s{};
  if (inflateInit2(&s, -12) != Z_OK) return false;
  s.next_in = const_cast<Bytef*>(in);
  s.avail_in = static_cast<uInt>(inLen);
  s.next_out = out;
  s.avail_out = static_cast<uInt>(outLen);
  int r = inflate(&s, Z_FINISH);
  const bool ok = r == Z_STREAM_END && s.avail_out == 0;
  if (consumed) *consumed = s.total_in;
  inflateEnd(&s);
  return ok;
}

std::string deflateCluster(const std::uint8_t* in, std::size_t len) {
  z_stream s{};
  if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error("zlib: deflateInit2 failed");
  std::string out(len - 1, '\0');
  s.next_in = const_cast<Bytef*>(in);
  s.avail_in = static_cast<uInt>(len);
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  int r = deflate(&s, Z_FINISH);
  const size_t n = out.size() - s.avail_out;
  deflateEnd(&s);
  if (r != Z_STREAM_END) return {};
  out.resize(n);
  return out;
}

std::optional<Qcow2Layout> readQcow2Layout(const fs::path& path, std::string* why,
                                           const fs::path* contentsOut) {
  auto no = [&](std::string reason) -> std::optional<Qcow2Layout> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open " + path.string());
  std::uint8_t h[112] = {};
  if (!preadExact(fd.get(), h, 104, 0) || std::memcmp(h, "QFI\xfb", 4) != 0)
    return no("not a qcow2 image");
  const std::uint32_t version = be32(h + 4);
  if (version != 2 && version != 3) return no("qcow2 version " + std::to_string(version));
  if (be64(h + 8) != 0) return no("it has a backing file");
  const std::uint32_t clusterBits = be32(h + 20);
  if (clusterBits < 9 || clusterBits > 21) return no("odd cluster size");
  if (be32(h + 32) != 0) return no("it is encrypted");
  const std::uint32_t l1Size = be32(h + 36);
  const std::uint64_t l1Offset = be64(h + 40);
  if (version == 3) {
    const std::uint64_t incompatible = be64(h + 72);
    // Known incompatible bits: dirty (0), corrupt (1), external data (2), compression type (3),
    // extended L2 (4). Only "compression type" is acceptable, and only with zlib.
    if (incompatible & ~std::uint64_t{1 << 3}) return no("incompatible features in use");
    const std::uint32_t headerLength = be32(h + 100);
    if (headerLength > 104) {
      if (!preadExact(fd.get(), h + 104, 1, 104)) return no("truncated header");
      if (h[104] != 0) return no("compressed with zstd, not zlib");
    }
  }
  Qcow2Layout layout;
  layout.clusterBits = clusterBits;
  layout.fileSize = static_cast<std::uint64_t>(::lseek(fd.get(), 0, SEEK_END));
  const std::uint64_t clusterSize = 1ull << clusterBits;
  const std::uint64_t l2Entries = clusterSize / 8;
  if (l1Size > (64u << 20)) return no("implausible L1 size");
  std::vector<std::uint8_t> l1(static_cast<size_t>(l1Size) * 8);
  if (!preadExact(fd.get(), l1.data(), l1.size(), l1Offset)) return no("truncated L1 table");
  std::vector<std::uint8_t> l2(clusterSize);
  const int x = 62 - (static_cast<int>(clusterBits) - 8);
  const std::uint64_t offsetMask = (std::uint64_t{1} << x) - 1;
  std::vector<std::uint8_t> blob(clusterSize * 2 + 512);
  std::vector<std::uint8_t> scratch(clusterSize);
  UniqueFd contents;
  if (contentsOut) {
    contents.reset(::open(contentsOut->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!contents) throwErrno("cannot create " + contentsOut->string());
  }
  std::vector<std::uint8_t> pending;  // contents batched into large writes
  auto emit = [&](const std::uint8_t* data) {
    if (!contentsOut) return;
    pending.insert(pending.end(), data, data + clusterSize);
    if (pending.size() < (8u << 20)) return;
    if (::write(contents.get(), pending.data(), pending.size()) !=
        static_cast<ssize_t>(pending.size()))
      throwErrno("cannot write " + contentsOut->string());
    pending.clear();
  };
  for (std::uint32_t i = 0; i < l1Size; ++i) {
    const std::uint64_t l2Offset = be64(&l1[i * 8]) & 0x00fffffffffffe00ull;
    if (l2Offset == 0) continue;
    if (!preadExact(fd.get(), l2.data(), l2.size(), l2Offset)) return no("truncated L2 table");
    for (std::uint64_t j = 0; j < l2Entries; ++j) {
      const std::uint64_t e = be64(&l2[j * 8]);
      if (e & (std::uint64_t{1} << 62)) {
        const std::uint64_t off = e & offsetMask;
        const std::uint64_t sectors = ((e >> x) & ((std::uint64_t{1} << (62 - x)) - 1)) + 1;
        const std::uint64_t span = std::min<std::uint64_t>(
            sectors * 512 - (off & 511), layout.fileSize - std::min(off, layout.fileSize));
        if (span == 0 || span > blob.size()) return no("odd compressed cluster descriptor");
        if (!preadExact(fd.get(), blob.data(), span, off))
          return no("truncated compressed cluster");
        size_t used = 0;
        if (!inflateCluster(blob.data(), span, scratch.data(), scratch.size(), &used))
          return no("a compressed cluster does not inflate");
        layout.clusters.push_back({off, static_cast<std::uint32_t>(used), true});
        emit(scratch.data());
      } else {
        const std::uint64_t off = e & 0x00fffffffffffe00ull;
        if (off == 0) continue;  // unallocated or all zeros
        layout.clusters.push_back({off, static_cast<std::uint32_t>(clusterSize), false});
        if (contentsOut) {
          if (!preadExact(fd.get(), scratch.data(), clusterSize, off))
            return no("truncated cluster");
          emit(scratch.data());
        }
      }
    }
  }
  if (contentsOut && !pending.empty() &&
      ::write(contents.get(), pending.data(), pending.size()) !=
          static_cast<ssize_t>(pending.size()))
    throwErrno("cannot write " + contentsOut->string());
  layout.guestOrder = layout.clusters;
  std::sort(layout.clusters.begin(), layout.clusters.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  // Two guest clusters may share one host cluster (deduplicated by a tool): keep one, and never
  // let two ranges overlap.
  std::vector<Qcow2Cluster> unique;
  for (const auto& c : layout.clusters) {
    if (!unique.empty() && c.offset < unique.back().offset + unique.back().length) {
      if (c.offset == unique.back().offset && c.length == unique.back().length) continue;
      return no("overlapping clusters");
    }
    unique.push_back(c);
  }
  layout.clusters = std::move(unique);
  return layout;
}

}  // namespace imgpipe::transfer
