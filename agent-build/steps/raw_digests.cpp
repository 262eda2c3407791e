// Step 8b: the digests of the raw image the controllers will expand from the delivered qcow2
// (outputs: [raw]). The WAN carries the compressed qcow2; a Ceph site registers the raw, and
// checks what it expanded against these digests, taken here from the same expansion of the same
// file (qemu-img convert -O raw: the guest-visible bytes, whatever the qcow2's layout).
#include "agent-build/steps/step.h"
#include "common/temp_dir.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;
using definition::OutputKind;

class RawDigestsStep : public Step {
 public:
  std::string_view name() const override { return "raw_digests"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return definition::lists(def.outputs, OutputKind::raw) ? "" : "no raw output";
  }

  std::string run(BuildContext& ctx) override {
    const fs::path raw = ctx.workDir / "expanded.raw";
    RemoveOnExit removeRaw(raw);  // only its digests are kept; the controller expands its own
    ConvertOptions c;
    c.source = ctx.output;
    c.sourceFormat = "qcow2";
    c.target = raw;
    c.targetFormat = "raw";
    c.expectedReadBytes = ctx.outputDigests.size;
    qemuImgConvert(ctx.exec(), c, ctx.progress());
    const FileDigests d = hashFile(raw);
    if (d.size != ctx.outputInfo.virtualSize)
      throw Error("the raw expanded from " + ctx.output.string() + " is " + formatBytes(d.size) +
                  ", its qcow2's virtual size is " + formatBytes(ctx.outputInfo.virtualSize));
    ctx.rawDigests = d;
    return "raw " + formatBytes(d.size) + " (" + formatBytes(allocatedBytes(raw)) +
           " allocated), sha256 " + toHex(d.sha256).substr(0, 16) + "...";
  }
};

}  // namespace

std::unique_ptr<Step> makeRawDigestsStep() {
  return std::make_unique<RawDigestsStep>();
}

}  // namespace imgpipe::build
