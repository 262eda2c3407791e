// Step 5c: packages installed, upgraded and removed with the image's own apt, through the
// agent's shared package cache (see mount/apt.h).
#include "agent-build/mount/apt.h"
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class PackagesStep : public Step {
 public:
  std::string_view name() const override { return "packages"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    const auto& p = def.packages;
    return p.install.empty() && p.remove.empty() && !p.upgrade
               ? "no packages to install, upgrade or remove"
               : "";
  }

  std::string run(BuildContext& ctx) override {
    const auto& p = ctx.def.packages;
    Apt apt(ctx.session(), ctx.config, ctx.log, ctx.stop,
            {.installRecommends = p.installRecommends,
             .network = ctx.def.network,
             .scratch = ctx.workDir});
    if (p.update) {
      ctx.log.info("apt-get update");
      apt.update();
    }
    if (p.upgrade) {
      ctx.log.info("apt-get dist-upgrade");
      apt.distUpgrade();
    }
    if (!p.install.empty()) {
      ctx.log.info("apt-get install " + std::to_string(p.install.size()) + " packages");
      apt.install(p.install);
    }
    std::string summary = apt.summary();
    if (!p.remove.empty()) {
      ctx.log.info("apt-get purge " + std::to_string(p.remove.size()) + " packages");
      apt.purge(p.remove);
    }
    apt.finish();
    return summary.empty() ? "packages up to date" : summary;
  }
};

}  // namespace

std::unique_ptr<Step> makePackagesStep() {
  return std::make_unique<PackagesStep>();
}

}  // namespace imgpipe::build
