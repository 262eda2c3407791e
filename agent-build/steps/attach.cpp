// Step 2b: attaches the work image as a block device (loop, or kernel nbd where the host has it)
// and finds the root filesystem by what it is, not by assuming partition 1.
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class AttachStep : public Step {
 public:
  std::string_view name() const override { return "attach"; }

  std::string run(BuildContext& ctx) override {
    ctx.disk = attachDisk(ctx.image, ctx.exec());
    ctx.log.info("attached " + ctx.disk->describe());
    auto parts = ctx.disk->partitions(ctx.exec());
    for (const auto& p : parts)
      ctx.log.detail("  " + describe(p));
    ctx.root = findRootPartition(parts, ctx.def.disk.rootLabel);
    return ctx.disk->device().string() + "; root filesystem " + describe(ctx.root);
  }
};

}  // namespace

std::unique_ptr<Step> makeAttachStep() {
  return std::make_unique<AttachStep>();
}

}  // namespace imgpipe::build
