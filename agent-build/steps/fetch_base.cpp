// Step 1: the base image — a local file, a download verified against its SHA-256, or a
// debootstrap base — resolved through the agent's base cache.
#include "agent-build/base/base_cache.h"
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

class FetchBaseStep : public Step {
 public:
  std::string_view name() const override { return "fetch_base"; }
  bool runsWhenReused() const override { return true; }

  std::string run(BuildContext& ctx) override {
    ctx.toolVersion = qemuImgVersion(ctx.exec());
    BaseCache cache(ctx.config, ctx.exec(), ctx.log);
    auto result = cache.resolve(ctx.def.base, ctx.workDir, ctx.def.mirrors);
    ctx.base = result.base;
    ctx.baseLock = std::move(result.lock);
    cache.evict();
    return ctx.base.kind + " base " + ctx.base.source + ": " + ctx.base.format + ", " +
           formatBytes(ctx.base.virtualSize) + " virtual, sha256 " +
           ctx.base.sha256Hex.substr(0, 16) + "..." +
           (ctx.base.unpacked.empty() ? "" : ", unpacked from " + ctx.base.unpacked) +
           (ctx.base.cached ? " (from the cache)" : "");
  }
};

}  // namespace

std::unique_ptr<Step> makeFetchBaseStep() {
  return std::make_unique<FetchBaseStep>();
}

}  // namespace imgpipe::build
