// Step 3: makes the root filesystem use the grown disk: the GPT backup header moved to the new
// end (sgdisk -e), the root partition grown (growpart), checked (e2fsck -f -y) and resized
// (resize2fs).
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

class GrowStep : public Step {
 public:
  std::string_view name() const override { return "grow"; }

  std::string run(BuildContext& ctx) override {
    auto exec = ctx.exec();
    const auto dev = ctx.disk->device().string();
    const std::uint64_t before = ctx.root.size;
    auto pt = runUnchecked(exec, {"blkid", "-p", "-o", "value", "-s", "PTTYPE", dev}, true);
    if (pt.stdoutText.find("gpt") != std::string::npos) build::run(exec, {"sgdisk", "-e", dev});

    // growpart exits 1 with NOCHANGE when the partition already fills the disk (or is not the
    // last one): nothing to grow is not an error.
    auto grow = runUnchecked(exec, {"growpart", dev, std::to_string(ctx.root.number)});
    bool grew = grow.exitCode == 0;
    if (!grew) {
      bool nochange = false;
      for (const auto& l : grow.tail)
        nochange |= l.find("NOCHANGE") != std::string::npos;
      if (!nochange)
        throw CommandError("growpart " + dev + " " + std::to_string(ctx.root.number), grow);
    }
    ctx.disk->refreshPartitions(exec);
    for (const auto& p : ctx.disk->partitions(exec))
      if (p.number == ctx.root.number) ctx.root = p;

    if (!ctx.root.fsType.starts_with("ext"))
      throw Error("the root filesystem is " + ctx.root.fsType +
                  "; only ext2/3/4 roots can be grown and checked");
    // e2fsck: 0 clean, 1 errors corrected, 2 corrected (reboot advised) — all fine offline.
    auto fsck = runUnchecked(exec, {"e2fsck", "-f", "-y", ctx.root.device.string()});
    if (fsck.exitCode > 2) throw CommandError("e2fsck -f -y " + ctx.root.device.string(), fsck);
    if (fsck.exitCode != 0)
      ctx.log.warn("e2fsck corrected errors in the base's root filesystem (exit code " +
                   std::to_string(fsck.exitCode) + ")");
    build::run(exec, {"resize2fs", ctx.root.device.string()});
    return "partition " + std::to_string(ctx.root.number) + ": " + formatBytes(before) +
           (grew ? " -> " + formatBytes(ctx.root.size) : " (already fills the disk)") + "; " +
           ctx.root.fsType + " checked and resized";
  }
};

}  // namespace

std::unique_ptr<Step> makeGrowStep() {
  return std::make_unique<GrowStep>();
}

}  // namespace imgpipe::build
