#include "transfer/delta.h"

#include <librsync.h>
#include <lzma.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/fd_io.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/temp_dir.h"
#include "transfer/qcow2.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

File openFile(const fs::path& path, const char* mode) {
  File f(std::fopen(path.c_str(), mode));
  if (!f) throwErrno("cannot open " + path.string());
  // Large stdio buffers: librsync's file helpers read and write through these.
  std::setvbuf(f.get(), nullptr, _IOFBF, 1 << 20);
  return f;
}

struct SignatureFree {
  void operator()(rs_signature_t* s) const { rs_free_sumset(s); }
};
using Signature = std::unique_ptr<rs_signature_t, SignatureFree>;

void check(rs_result r, const std::string& what) {
  if (r != RS_DONE) throw Error(what + ": librsync: " + rs_strerror(r));
}

std::uint64_t fileSize(const fs::path& p) {
  return fs::file_size(p);
}

void closeChecked(File& f, const fs::path& path) {
  FILE* raw = f.release();
  if (std::fflush(raw) != 0 || std::fclose(raw) != 0) throwErrno("cannot write " + path.string());
}

}  // namespace

DeltaStats makeSignature(const fs::path& basis, const fs::path& sigOut, std::uint32_t blockLen,
                         std::uint32_t strongLen) {
  File in = openFile(basis, "rb");
  File out = openFile(sigOut, "wb");
  rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
  size_t block = blockLen, strong = strongLen;
  check(rs_sig_args(static_cast<rs_long_t>(fileSize(basis)), &magic, &block, &strong),
        "signature parameters for " + basis.string());
  rs_stats_t stats{};
  check(rs_sig_file(in.get(), out.get(), block, strong, magic, &stats),
        "signature of " + basis.string());
  closeChecked(out, sigOut);
  DeltaStats s;
  s.signatureBytes = fileSize(sigOut);
  return s;
}

DeltaStats makeDelta(const fs::path& signature, const fs::path& target, const fs::path& deltaOut,
                     int xzPreset) {
  rs_signature_t* rawSig = nullptr;
  {
    File sigIn = openFile(signature, "rb");
    rs_stats_t stats{};
    rs_result r = rs_loadsig_file(sigIn.get(), &rawSig, &stats);
    Signature owned(rawSig);
    check(r, "loading signature " + signature.string());
    rawSig = owned.release();
  }
  Signature sig(rawSig);
  check(rs_build_hash_table(sig.get()), "indexing signature " + signature.string());
  const fs::path rawDelta = deltaOut.string() + ".rdiff";
  RemoveOnExit cleanup(rawDelta);
  rs_stats_t stats{};
  {
    File in = openFile(target, "rb");
    File out = openFile(rawDelta, "wb");
    check(rs_delta_file(sig.get(), in.get(), out.get(), &stats), "delta of " + target.string());
    closeChecked(out, rawDelta);
  }
  xzCompress(rawDelta, deltaOut, xzPreset);
  DeltaStats s;
  s.rawDeltaBytes = fileSize(rawDelta);
  s.deltaBytes = fileSize(deltaOut);
  s.literalBytes = static_cast<std::uint64_t>(stats.lit_bytes);
  s.matchedBytes = static_cast<std::uint64_t>(stats.copy_bytes);
  return s;
}

void applyDelta(const fs::path& basis, const fs::path& delta, const fs::path& out) {
  const fs::path rawDelta = out.string() + ".rdiff";
  RemoveOnExit cleanup(rawDelta);
  xzDecompress(delta, rawDelta);
  File basisIn = openFile(basis, "rb");
  File deltaIn = openFile(rawDelta, "rb");
  // "r+b" when the output exists: a preallocated data file is overwritten in place.
  File result = openFile(out, fs::exists(out) ? "r+b" : "wb");
  rs_stats_t stats{};
  check(rs_patch_file(basisIn.get(), deltaIn.get(), result.get(), &stats),
        "patching " + basis.string());
  closeChecked(result, out);
}

namespace {

void runLzma(lzma_stream& strm, const fs::path& in, const fs::path& out) {
  File src = openFile(in, "rb");
  File dst = openFile(out, "wb");
  std::vector<std::uint8_t> inbuf(1 << 20), outbuf(1 << 20);
  lzma_action action = LZMA_RUN;
  strm.next_out = outbuf.data();
  strm.avail_out = outbuf.size();
  for (;;) {
    if (strm.avail_in == 0 && action == LZMA_RUN) {
      strm.next_in = inbuf.data();
      strm.avail_in = std::fread(inbuf.data(), 1, inbuf.size(), src.get());
      if (std::ferror(src.get())) throwErrno("cannot read " + in.string());
      if (std::feof(src.get())) action = LZMA_FINISH;
    }
    lzma_ret r = lzma_code(&strm, action);
    if (strm.avail_out == 0 || r == LZMA_STREAM_END) {
      size_t n = outbuf.size() - strm.avail_out;
      if (std::fwrite(outbuf.data(), 1, n, dst.get()) != n)
        throwErrno("cannot write " + out.string());
      strm.next_out = outbuf.data();
      strm.avail_out = outbuf.size();
    }
    if (r == LZMA_STREAM_END) break;
    if (r != LZMA_OK)
      throw Error("xz: " + in.string() + ": " +
                  (r == LZMA_DATA_ERROR || r == LZMA_FORMAT_ERROR ? "corrupt data"
                                                                  : "error " + std::to_string(r)));
  }
  closeChecked(dst, out);
}

struct LzmaEnd {
  lzma_stream* s;
  ~LzmaEnd() { lzma_end(s); }
};

}  // namespace

void xzCompress(const fs::path& in, const fs::path& out, int preset) {
  lzma_stream strm = LZMA_STREAM_INIT;
  if (lzma_easy_encoder(&strm, static_cast<std::uint32_t>(preset), LZMA_CHECK_CRC64) != LZMA_OK)
    throw Error("xz: cannot initialise the encoder");
  LzmaEnd end{&strm};
  runLzma(strm, in, out);
}

void xzDecompress(const fs::path& in, const fs::path& out) {
  lzma_stream strm = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&strm, UINT64_MAX, 0) != LZMA_OK)
    throw Error("xz: cannot initialise the decoder");
  LzmaEnd end{&strm};
  runLzma(strm, in, out);
}

}  // namespace imgpipe::transfer

// --- the qcow2-aware delta --------------------------------------------------------------------

namespace imgpipe::transfer {
namespace {

constexpr char kQcow2DeltaMagic[8] = {'I', 'P', 'Q', 'C', 'D', 1, 0, 0};
enum Op : std::uint8_t { kLit = 0, kCopy = 1, kDeflate = 2, kRaw = 3 };

void putVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::uint64_t getVarint(const std::string& in, size_t& pos) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= in.size()) throw Error("qcow2 delta: truncated segment table");
    const auto b = static_cast<std::uint8_t>(in[pos++]);
    v |= std::uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  throw Error("qcow2 delta: malformed segment table");
}

void putU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
std::uint64_t getU64(const std::string& in, size_t pos) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | static_cast<std::uint8_t>(in.at(pos + i));
  return v;
}

// Random reads go around stdio: a seek would throw its 1 MiB buffer away every time.
void readAt(FILE* f, std::uint8_t* buf, size_t n, std::uint64_t off, const fs::path& path) {
  if (preadFully(::fileno(f), buf, n, off) != static_cast<ssize_t>(n))
    throw Error("cannot read " + std::to_string(n) + " bytes at " + std::to_string(off) + " of " +
                path.string());
}

void writeAll(FILE* f, const void* buf, size_t n, const fs::path& path) {
  if (n != 0 && std::fwrite(buf, 1, n, f) != n) throwErrno("cannot write " + path.string());
}

// The basis side of the contents patch: serves byte ranges of the (virtual) stream of the basis's
// decompressed clusters in guest order, inflating clusters on demand with a small cache.
class ClusterReader {
 public:
  ClusterReader(const fs::path& image, const Qcow2Layout& layout)
      : image_(image), layout_(layout), file_(openFile(image, "rb")), blob_(layout.clusterSize()) {}

  rs_result copy(rs_long_t pos, size_t* len, void** buf) {
    const size_t cs = layout_.clusterSize();
    const auto index = static_cast<size_t>(pos / static_cast<rs_long_t>(cs));
    const auto offset = static_cast<size_t>(pos % static_cast<rs_long_t>(cs));
    if (pos < 0 || index >= layout_.guestOrder.size()) return RS_INPUT_ENDED;
    const std::uint8_t* data = cluster(index);
    if (!data) return RS_CORRUPT;
    *len = std::min(*len, cs - offset);
    std::memcpy(*buf, data + offset, *len);
    return RS_DONE;
  }

  static rs_result callback(void* self, rs_long_t pos, size_t* len, void** buf) {
    try {
      return static_cast<ClusterReader*>(self)->copy(pos, len, buf);
    } catch (const std::exception&) {
      return RS_IO_ERROR;
    }
  }

 private:
  const std::uint8_t* cluster(size_t index) {
    for (auto& e : cache_)
      if (e.index == index) return e.data.data();
    const auto& c = layout_.guestOrder[index];
    auto& slot = cache_[next_++ % cache_.size()];
    slot.index = index;
    slot.data.resize(layout_.clusterSize());
    readAt(file_.get(), blob_.data(), c.length, c.offset, image_);
    if (!c.compressed) {
      std::memcpy(slot.data.data(), blob_.data(), c.length);
    } else if (!inflateCluster(blob_.data(), c.length, slot.data.data(), slot.data.size(),
                               nullptr)) {
      slot.index = SIZE_MAX;
      return nullptr;
    }
    return slot.data.data();
  }

  struct Entry {
    size_t index = SIZE_MAX;
    std::vector<std::uint8_t> data;
  };
  const fs::path& image_;
  const Qcow2Layout& layout_;
  File file_;
  std::vector<std::uint8_t> blob_;
  std::array<Entry, 16> cache_;
  size_t next_ = 0;
};

struct JobFree {
  void operator()(rs_job_t* j) const { rs_job_free(j); }
};

void patchFromClusters(const fs::path& basis, const Qcow2Layout& layout, const fs::path& rdiff,
                       const fs::path& out) {
  ClusterReader reader(basis, layout);
  std::unique_ptr<rs_job_t, JobFree> job(rs_patch_begin(&ClusterReader::callback, &reader));
  File in = openFile(rdiff, "rb");
  File dst = openFile(out, "wb");
  std::vector<char> inbuf(1 << 20), outbuf(1 << 20);
  rs_buffers_t b{};
  b.next_out = outbuf.data();
  b.avail_out = outbuf.size();
  for (;;) {
    if (!b.eof_in && b.avail_in < inbuf.size() / 2) {
      // librsync keeps what it has not consumed in place: move it to the front, then top up.
      std::memmove(inbuf.data(), b.next_in ? b.next_in : inbuf.data(), b.avail_in);
      const size_t n =
          std::fread(inbuf.data() + b.avail_in, 1, inbuf.size() - b.avail_in, in.get());
      if (std::ferror(in.get())) throwErrno("cannot read " + rdiff.string());
      b.next_in = inbuf.data();
      b.avail_in += n;
      if (std::feof(in.get())) b.eof_in = 1;
    }
    const rs_result r = rs_job_iter(job.get(), &b);
    const size_t produced = outbuf.size() - b.avail_out;
    writeAll(dst.get(), outbuf.data(), produced, out);
    b.next_out = outbuf.data();
    b.avail_out = outbuf.size();
    if (r == RS_DONE) break;
    if (r != RS_BLOCKED)
      throw Error("patching cluster contents: librsync: " + std::string(rs_strerror(r)));
  }
  closeChecked(dst, out);
}

std::string hashKey(const std::uint8_t* data, size_t n) {
  Hasher h(HashAlgo::sha256);
  h.update(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), n));
  return h.finish().substr(0, 16);
}

}  // namespace

DeltaStats makeQcow2Delta(const fs::path& basis, const fs::path& target, const fs::path& deltaOut,
                          const fs::path& work, std::uint32_t blockLen, int xzPreset) {
  // Both images are taken apart at once (each inflates every cluster once), the basis writing
  // its cluster contents on the way: the other side of the rdiff below.
  std::string whyB, whyT;
  std::optional<Qcow2Layout> lb, lt;
  const fs::path basisContents = work / "basis-contents";
  {
    std::exception_ptr failure;
    std::jthread other([&] {
      try {
        lb = readQcow2Layout(basis, &whyB, &basisContents);
      } catch (...) {
        failure = std::current_exception();
      }
    });
    lt = readQcow2Layout(target, &whyT);
    other.join();
    if (failure) std::rethrow_exception(failure);
  }
  if (!lb) throw DeltaUnsupported("basis: " + whyB);
  if (!lt) throw DeltaUnsupported("target: " + whyT);
  if (lb->clusterBits != lt->clusterBits) throw DeltaUnsupported("different cluster sizes");
  const size_t cs = lt->clusterSize();

  // Every deflated blob of the basis, by content.
  std::unordered_map<std::string, std::uint64_t> basisBlobs;
  {
    File in = openFile(basis, "rb");
    std::vector<std::uint8_t> blob(cs);
    for (const auto& c : lb->clusters) {
      if (!c.compressed) continue;
      readAt(in.get(), blob.data(), c.length, c.offset, basis);
      basisBlobs.emplace(hashKey(blob.data(), c.length), c.offset);
    }
  }

  std::string segments;
  File in = openFile(target, "rb");
  File literal = openFile(work / "literal", "wb");
  File contents = openFile(work / "target-contents", "wb");
  std::vector<std::uint8_t> blob(cs), raw(cs), gap(1 << 20);
  std::uint64_t pos = 0;
  std::uint64_t copyFrom = 0, copyLen = 0;  // a run of COPY being merged
  auto flushCopy = [&] {
    if (copyLen == 0) return;
    segments.push_back(kCopy);
    putVarint(segments, copyFrom);
    putVarint(segments, copyLen);
    copyLen = 0;
  };
  auto literalBytes = [&](std::uint64_t from, std::uint64_t n) {
    flushCopy();
    segments.push_back(kLit);
    putVarint(segments, n);
    while (n > 0) {
      const size_t step = static_cast<size_t>(std::min<std::uint64_t>(n, gap.size()));
      readAt(in.get(), gap.data(), step, from, target);
      writeAll(literal.get(), gap.data(), step, work / "literal");
      from += step;
      n -= step;
    }
  };
  for (const auto& c : lt->clusters) {
    if (c.offset > pos) literalBytes(pos, c.offset - pos);
    readAt(in.get(), blob.data(), c.length, c.offset, target);
    if (c.compressed) {
      auto hit = basisBlobs.find(hashKey(blob.data(), c.length));
      if (hit != basisBlobs.end()) {
        if (copyLen > 0 && copyFrom + copyLen == hit->second) {
          copyLen += c.length;
        } else {
          flushCopy();
          copyFrom = hit->second;
          copyLen = c.length;
        }
      } else if (inflateCluster(blob.data(), c.length, raw.data(), cs, nullptr) &&
                 deflateCluster(raw.data(), cs) ==
                     std::string_view(reinterpret_cast<const char*>(blob.data()), c.length)) {
        flushCopy();
        segments.push_back(kDeflate);
        putVarint(segments, c.length);
        writeAll(contents.get(), raw.data(), cs, work / "target-contents");
      } else {
        literalBytes(c.offset, c.length);  // deflated by another zlib: send it as it is
      }
    } else {
      flushCopy();
      segments.push_back(kRaw);
      writeAll(contents.get(), blob.data(), cs, work / "target-contents");
    }
    pos = c.offset + c.length;
  }
  if (pos < lt->fileSize) literalBytes(pos, lt->fileSize - pos);
  flushCopy();
  closeChecked(literal, work / "literal");
  closeChecked(contents, work / "target-contents");
  in.reset();

  makeSignature(basisContents, work / "basis-contents.sig", blockLen);
  fs::remove(basisContents);
  auto contentDelta = makeDelta(work / "basis-contents.sig", work / "target-contents",
                                work / "contents.rdiff.xz", xzPreset);
  { std::ofstream(work / "segments", std::ios::binary) << segments; }
  xzCompress(work / "segments", work / "segments.xz", 9);
  xzCompress(work / "literal", work / "literal.xz", 6);

  std::string header(kQcow2DeltaMagic, sizeof kQcow2DeltaMagic);
  putU64(header, lt->fileSize);
  putU64(header, lt->clusterBits);
  for (const char* part : {"segments.xz", "literal.xz", "contents.rdiff.xz"})
    putU64(header, fs::file_size(work / part));
  {
    File out = openFile(deltaOut, "wb");
    writeAll(out.get(), header.data(), header.size(), deltaOut);
    std::vector<char> buf(1 << 20);
    for (const char* part : {"segments.xz", "literal.xz", "contents.rdiff.xz"}) {
      File p = openFile(work / part, "rb");
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), p.get())) > 0)
        writeAll(out.get(), buf.data(), n, deltaOut);
    }
    closeChecked(out, deltaOut);
  }
  DeltaStats s;
  s.deltaBytes = fs::file_size(deltaOut);
  s.rawDeltaBytes = contentDelta.rawDeltaBytes;
  s.literalBytes = contentDelta.literalBytes + fs::file_size(work / "literal");
  return s;
}

void applyQcow2Delta(const fs::path& basis, const fs::path& delta, const fs::path& out,
                     const fs::path& work) {
  std::string header(8 + 5 * 8, '\0');
  {
    File d = openFile(delta, "rb");
    if (std::fread(header.data(), 1, header.size(), d.get()) != header.size() ||
        header.compare(0, 8, std::string(kQcow2DeltaMagic, 8)) != 0)
      throw Error(delta.string() + " is not a qcow2 delta");
    std::uint64_t offset = header.size();
    const char* names[] = {"segments.xz", "literal.xz", "contents.rdiff.xz"};
    std::vector<char> buf(1 << 20);
    for (int i = 0; i < 3; ++i) {
      std::uint64_t left = getU64(header, 24 + 8 * i);
      File p = openFile(work / names[i], "wb");
      if (::fseeko(d.get(), static_cast<off_t>(offset), SEEK_SET) != 0)
        throwErrno("cannot seek " + delta.string());
      offset += left;
      while (left > 0) {
        const size_t step = static_cast<size_t>(std::min<std::uint64_t>(left, buf.size()));
        if (std::fread(buf.data(), 1, step, d.get()) != step)
          throw Error(delta.string() + " is truncated");
        writeAll(p.get(), buf.data(), step, work / names[i]);
        left -= step;
      }
      closeChecked(p, work / names[i]);
    }
  }
  const std::uint64_t targetSize = getU64(header, 8);
  const auto clusterBits = static_cast<std::uint32_t>(getU64(header, 16));
  xzDecompress(work / "segments.xz", work / "segments");
  xzDecompress(work / "literal.xz", work / "literal");
  std::string why;
  auto lb = readQcow2Layout(basis, &why);
  if (!lb) throw Error("the basis cannot be read as qcow2: " + why);
  if (lb->clusterBits != clusterBits) throw Error("the basis has another cluster size");
  // The basis's decompressed clusters are read straight out of the basis, cluster by cluster, as
  // the patch asks for them: a controller needs no scratch space the size of the image's data.
  xzDecompress(work / "contents.rdiff.xz", work / "contents.rdiff");
  patchFromClusters(basis, *lb, work / "contents.rdiff", work / "target-contents");
  fs::remove(work / "contents.rdiff");

  const std::string segments = readFile(work / "segments");
  const size_t cs = size_t{1} << clusterBits;
  File basisIn = openFile(basis, "rb");
  File literal = openFile(work / "literal", "rb");
  File contents = openFile(work / "target-contents", "rb");
  File result = openFile(out, fs::exists(out) ? "r+b" : "wb");
  std::vector<std::uint8_t> buf(std::max<size_t>(cs, 1 << 20));
  std::uint64_t written = 0;
  for (size_t pos = 0; pos < segments.size();) {
    const auto op = static_cast<std::uint8_t>(segments[pos++]);
    switch (op) {
      case kLit:
      case kCopy: {
        std::uint64_t from = op == kCopy ? getVarint(segments, pos) : 0;
        std::uint64_t n = getVarint(segments, pos);
        while (n > 0) {
          const size_t step = static_cast<size_t>(std::min<std::uint64_t>(n, buf.size()));
          if (op == kCopy) {
            readAt(basisIn.get(), buf.data(), step, from, basis);
            from += step;
          } else if (std::fread(buf.data(), 1, step, literal.get()) != step) {
            throw Error("qcow2 delta: literal stream too short");
          }
          writeAll(result.get(), buf.data(), step, out);
          written += step;
          n -= step;
        }
        break;
      }
      case kDeflate:
      case kRaw: {
        const std::uint64_t expect = op == kDeflate ? getVarint(segments, pos) : cs;
        if (std::fread(buf.data(), 1, cs, contents.get()) != cs)
          throw Error("qcow2 delta: cluster contents too short");
        if (op == kRaw) {
          writeAll(result.get(), buf.data(), cs, out);
        } else {
          const std::string blob = deflateCluster(buf.data(), cs);
          // Another zlib here than at the sender: the chunks it touches will not verify and
          // are fetched whole.
          if (blob.size() != expect)
            throw Error("qcow2 delta: deflate does not reproduce a cluster");
          writeAll(result.get(), blob.data(), blob.size(), out);
        }
        written += expect;
        break;
      }
      default:
        throw Error("qcow2 delta: unknown segment type " + std::to_string(op));
    }
  }
  if (written != targetSize)
    throw Error("qcow2 delta: produced " + std::to_string(written) + " bytes, expected " +
                std::to_string(targetSize));
  closeChecked(result, out);
}

}  // namespace imgpipe::transfer
