// Step 7: unmount and detach, checked. Before that: fstrim after a sync (without the sync,
// fstrim misses blocks freed by the cleanup), and the ext4 journal dropped and re-created so
// that the compacted image is smaller and much more delta-friendly (measured in the notes).
// On failure paths the same resources unwind in the BuildContext's destructor instead.
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

class UnmountStep : public Step {
 public:
  std::string_view name() const override { return "unmount"; }

  std::string run(BuildContext& ctx) override {
    auto exec = ctx.exec();
    ctx.session().finish();
    ctx.chroot.reset();
    const auto root = ctx.rootDir().string();
    // What the trims give back is measured on the work image itself (fstrim's own figure counts
    // every free range, allocated or not).
    const std::uint64_t allocatedBefore = allocatedBytes(ctx.image.file);
    build::run(exec, {"sync", "-f", root});
    build::run(exec, {"fstrim", root});
    ctx.rootMount->unmount();
    ctx.rootMount.reset();

    std::string journal = "journal kept";
    const auto dev = ctx.root.device.string();
    if (ctx.def.cleanup.recreateJournal && ctx.root.fsType == "ext4") {
      auto features = build::run(exec, {"dumpe2fs", "-h", dev}, true);
      if (features.find("has_journal") != std::string::npos) {
        build::run(exec, {"tune2fs", "-O", "^has_journal", dev});
        {
          // The old journal's blocks are free now but still hold data; trim them too.
          Mount again(dev, ctx.rootDir(), ctx.root.fsType);
          build::run(exec, {"fstrim", root});
          again.unmount();
        }
        build::run(exec, {"tune2fs", "-O", "has_journal", dev});
        journal = "journal re-created";
      }
    }
    const auto name = ctx.disk->describe();
    const std::uint64_t allocatedAfter = allocatedBytes(ctx.image.file);
    const std::uint64_t trimmed =
        allocatedBefore > allocatedAfter ? allocatedBefore - allocatedAfter : 0;
    if (!ctx.disk->detach()) throw Error(name + " is still attached after detaching it");
    ctx.disk.reset();
    return "trimming freed " + formatBytes(trimmed) + " of the work image; " + journal +
           "; unmounted and detached " + name;
  }
};

}  // namespace

std::unique_ptr<Step> makeUnmountStep() {
  return std::make_unique<UnmountStep>();
}

}  // namespace imgpipe::build
