// Step 7: unmount and detach, checked. Before that: fstrim after a sync (without the sync,
// fstrim misses blocks freed by the cleanup), and the ext4 journal dropped and re-created so
// that the compacted image is smaller and much more delta-friendly (measured in the notes).
// On failure paths the same resources unwind in the BuildContext's destructor instead.
#include <regex>

#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

std::uint64_t trimmedBytes(const std::string& fstrimOutput) {
  // "/path: 412.3 MiB (432341234 bytes) trimmed"
  static const std::regex re("\\(([0-9]+) bytes\\) trimmed");
  std::smatch m;
  if (std::regex_search(fstrimOutput, m, re)) return std::stoull(m[1]);
  return 0;
}

class UnmountStep : public Step {
 public:
  std::string_view name() const override { return "unmount"; }

  std::string run(BuildContext& ctx) override {
    auto exec = ctx.exec();
    ctx.session().finish();
    ctx.chroot.reset();
    const auto root = ctx.rootDir().string();
    build::run(exec, {"sync", "-f", root});
    std::uint64_t trimmed = trimmedBytes(build::run(exec, {"fstrim", "-v", root}, true));
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
          trimmed += trimmedBytes(build::run(exec, {"fstrim", "-v", root}, true));
          again.unmount();
        }
        build::run(exec, {"tune2fs", "-O", "has_journal", dev});
        journal = "journal re-created";
      }
    }
    const auto name = ctx.disk->describe();
    if (!ctx.disk->detach()) throw Error(name + " is still attached after detaching it");
    ctx.disk.reset();
    return "trimmed " + formatBytes(trimmed) + "; " + journal + "; unmounted and detached " + name;
  }
};

}  // namespace

std::unique_ptr<Step> makeUnmountStep() { return std::make_unique<UnmountStep>(); }

}  // namespace imgpipe::build
