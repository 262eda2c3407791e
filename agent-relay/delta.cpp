#include "agent-relay/delta.h"

#include <librsync.h>
#include <lzma.h>
#include <stdio.h>
#include <sys/stat.h>

#include <memory>
#include <vector>

#include "common/error.h"
#include "common/temp_dir.h"

namespace imgpipe::relay {
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
  struct Remove {
    fs::path p;
    ~Remove() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } cleanup{rawDelta};
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
  struct Remove {
    fs::path p;
    ~Remove() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } cleanup{rawDelta};
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

}  // namespace imgpipe::relay
