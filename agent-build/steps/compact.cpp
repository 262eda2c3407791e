// Step 8: compaction straight from the work image to a compressed qcow2 (zlib by default for
// compatibility; zstd, measured 5-9x faster and smaller, needs QEMU >= 5.1 wherever the image
// is read). With build.compression.parallel, qemu-img writes out of order (-W) so compression
// runs on every core; the output is then not byte-identical between two runs of the same input.
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

class CompactStep : public Step {
 public:
  std::string_view name() const override { return "compact"; }

  std::string run(BuildContext& ctx) override {
    const auto compression = effectiveCompression(ctx.def, ctx.config);
    ctx.output = ctx.workDir / "output.qcow2";
    ConvertOptions c;
    c.source = ctx.image.file;
    c.sourceFormat = ctx.image.format;
    c.target = ctx.output;
    c.targetFormat = "qcow2";
    c.compress = compression != definition::Compression::none;
    c.compression = compression;
    c.outOfOrder = ctx.config.parallelCompression;
    c.coroutines = ctx.config.compressionCoroutines;
    c.expectedReadBytes = allocatedBytes(ctx.image.file);
    const auto data = c.expectedReadBytes;
    qemuImgConvert(ctx.exec(), c, ctx.progress());
    fs::remove(ctx.image.file);  // the work copy is not needed any more; give the space back

    ctx.outputInfo = qemuImgInfo(ctx.exec(), ctx.output);
    ctx.outputDigests = hashFile(ctx.output);
    return std::string(toString(compression)) +
           (ctx.config.parallelCompression ? " (parallel)" : "") + ": " + formatBytes(data) +
           " of data -> " + formatBytes(ctx.outputDigests.size) + ", virtual " +
           formatBytes(ctx.outputInfo.virtualSize) + ", sha256 " +
           toHex(ctx.outputDigests.sha256).substr(0, 16) + "...";
  }
};

}  // namespace

std::unique_ptr<Step> makeCompactStep() {
  return std::make_unique<CompactStep>();
}

}  // namespace imgpipe::build
