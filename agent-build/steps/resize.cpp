// Step 2a: copies the base into the work dir in the form the attach method needs (sparse raw for
// a loop device, qcow2 for nbd) and grows the virtual disk to disk.size — before anything is
// installed, so packages never run out of room.
#include <nlohmann/json.hpp>

#include "agent-build/steps/step.h"
#include "common/file_util.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// Bytes of data in the image (what a raw copy will really occupy).
std::uint64_t dataBytes(const BuildContext& ctx) {
  if (ctx.base.format == "raw") return allocatedBytes(ctx.base.file);
  auto out = build::run(
      ctx.exec(),
      {"qemu-img", "map", "-f", ctx.base.format, "--output=json", ctx.base.file.string()}, true);
  std::uint64_t total = 0;
  for (const auto& e : nlohmann::json::parse(out))
    if (e.value("data", false) && !e.value("zero", false))
      total += e.at("length").get<std::uint64_t>();
  return total;
}

class ResizeStep : public Step {
 public:
  std::string_view name() const override { return "resize"; }

  std::string run(BuildContext& ctx) override {
    const std::uint64_t target = ctx.def.disk.size.value_or(ctx.base.virtualSize);
    if (target < ctx.base.virtualSize)
      throw Error("disk.size " + formatBytes(target) + " is smaller than the base's virtual size " +
                  formatBytes(ctx.base.virtualSize) + "; disks only grow");
    const std::uint64_t data = dataBytes(ctx);
    const std::uint64_t need = data + ctx.config.minFreeSpace;
    const std::uint64_t avail = freeBytes(ctx.workDir);
    if (avail < need)
      throw Error("not enough space in the work dir " + ctx.config.workDir.string() + ": " +
                  formatBytes(avail) + " free, this build needs about " + formatBytes(need) +
                  " (base data " + formatBytes(data) + " + build.min_free_space " +
                  formatBytes(ctx.config.minFreeSpace) + ")");

    const bool nbd = resolveAttachMethod(ctx.config.attach) == AttachMethod::nbd;
    ctx.image.format = nbd ? "qcow2" : "raw";
    ctx.image.file = ctx.workDir / (nbd ? "disk.qcow2" : "disk.raw");
    ConvertOptions c;
    c.source = ctx.base.file;
    c.sourceFormat = ctx.base.format;
    c.target = ctx.image.file;
    c.targetFormat = ctx.image.format;
    c.coroutines = ctx.config.compressionCoroutines;
    c.expectedReadBytes = ctx.base.format == "raw" ? data : allocatedBytes(ctx.base.file);
    qemuImgConvert(ctx.exec(), c, ctx.progress());
    ctx.baseLock.reset();  // done reading the cached base

    if (target > ctx.base.virtualSize) {
      if (nbd)
        build::run(ctx.exec(), {"qemu-img", "resize", "-f", "qcow2", ctx.image.file.string(),
                                std::to_string(target)});
      else
        fs::resize_file(ctx.image.file, target);  // sparse: costs nothing until written
    }
    return std::string(nbd ? "qcow2 copy" : "sparse raw copy") + " with " + formatBytes(data) +
           " of data; virtual " + formatBytes(ctx.base.virtualSize) +
           (target > ctx.base.virtualSize ? " -> " + formatBytes(target) : " (unchanged)");
  }
};

}  // namespace

std::unique_ptr<Step> makeResizeStep() {
  return std::make_unique<ResizeStep>();
}

}  // namespace imgpipe::build
