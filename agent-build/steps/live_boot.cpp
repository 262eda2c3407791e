// Step 5d: outputs: [iso]: live-boot into the image, so that its initramfs can boot the live
// ISO's squashfs root (agent-build/iso/). Installed here, while the image is still being
// customized, so the ISO is the image itself rather than a copy customized a second time; on
// a disk boot the hooks do nothing (they act on `boot=live` only).
#include "agent-build/iso/live_iso.h"
#include "agent-build/mount/apt.h"
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class LiveBootStep : public Step {
 public:
  std::string_view name() const override { return "live_boot"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return definition::lists(def.outputs, definition::OutputKind::iso) ? "" : "no iso output";
  }

  std::string run(BuildContext& ctx) override {
    Apt apt(ctx.session(), ctx.config, ctx.log, ctx.stop, {.network = ctx.def.network, .scratch = ctx.workDir});
    // The base's package lists may be gone (cleaned) or older than its archive.
    apt.update();
    apt.install(liveBootPackages());
    const std::string summary = apt.summary();
    apt.finish();
    return "live-boot in the initramfs (" + (summary.empty() ? "already installed" : summary) + ")";
  }
};

}  // namespace

std::unique_ptr<Step> makeLiveBootStep() {
  return std::make_unique<LiveBootStep>();
}

}  // namespace imgpipe::build
