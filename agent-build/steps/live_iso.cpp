// Step 8c: outputs: [iso]: the hybrid BIOS/UEFI live ISO of the finished image (agent-build/
// iso/), made from the compacted qcow2 opened read-only, so that it holds exactly what the
// qcow2 holds; the acceptance boot boots it next.
#include "agent-build/iso/live_iso.h"

#include "agent-build/disk/read_only_image.h"
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

class LiveIsoStep : public Step {
 public:
  std::string_view name() const override { return "live_iso"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return definition::lists(def.outputs, definition::OutputKind::iso) ? "" : "no iso output";
  }

  std::string run(BuildContext& ctx) override {
    const auto exec = ctx.exec();
    ReadOnlyImage image(ctx.output, ctx.workDir / "iso-image", ctx.def.disk.rootLabel, exec);
    const fs::path iso = ctx.workDir / (outputStem(ctx) + ".iso");
    const LiveIso made = makeLiveIso({.root = image.root(),
                                      .output = iso,
                                      .scratch = ctx.workDir / "iso",
                                      .volumeId = liveVolumeId(ctx.def.name)},
                                     exec);
    ctx.liveIso = iso;
    ctx.isoDigests = hashFile(iso);
    return "live ISO " + formatBytes(made.isoBytes) + " (squashfs root " +
           formatBytes(made.squashfsBytes) + ", kernel " + made.kernel + "), sha256 " +
           toHex(ctx.isoDigests->sha256).substr(0, 16) + "...";
  }
};

}  // namespace

std::unique_ptr<Step> makeLiveIsoStep() {
  return std::make_unique<LiveIsoStep>();
}

}  // namespace imgpipe::build
