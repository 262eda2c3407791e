// Step: looks for an earlier result built from exactly the same inputs; when there is one, the
// disk steps are skipped and the manifest step publishes that image under this version.
#include "agent-build/runner/result_cache.h"
#include "agent-build/steps/step.h"
#include "definition/outputs.h"

namespace imgpipe::build {
namespace {

class ReuseStep : public Step {
 public:
  std::string_view name() const override { return "reuse"; }
  bool runsWhenReused() const override { return true; }

  std::string run(BuildContext& ctx) override {
    if (!ctx.config.reuseResults) return "result reuse disabled (build.results.reuse: false)";
    ctx.reusable = ResultCache(ctx.config.cacheDir).lookup(ctx.contentDigest);
    if (!ctx.reusable) return "no earlier result with these inputs; building";
    // Never hand out bytes that changed since they were validated.
    auto digests = hashFile(ctx.reusable->image);
    if (toHex(digests.sha256) !=
        ctx.reusable->manifest.at("image").at("sha256").get<std::string>()) {
      ctx.log.warn("the earlier result " + ctx.reusable->image.string() +
                   " changed on disk; building again");
      ctx.reusable.reset();
      return "earlier result changed on disk; building";
    }
    // Files published beside the image (a live ISO) must still be there, unchanged.
    for (const auto& out : definition::outputDigestsFromJson(
             ctx.reusable->manifest.value("outputs", nlohmann::json::array()))) {
      if (out.file.empty()) continue;
      const auto file = ctx.reusable->image.parent_path() / out.file;
      std::error_code ec;
      if (!std::filesystem::exists(file, ec) || toHex(hashFile(file).sha256) != out.sha256) {
        ctx.log.warn("the earlier result's " + std::string(definition::toString(out.kind)) +
                     " output " + file.string() + " is gone or changed; building again");
        ctx.reusable.reset();
        return "earlier result's " + std::string(definition::toString(out.kind)) +
               " output gone or changed; building";
      }
    }
    // The base is not needed any more: let the cache evict it if it must.
    ctx.baseLock.reset();
    const auto& m = ctx.reusable->manifest;
    return "reusing " + ctx.reusable->image.string() + " (version " +
           m.at("image").value("version", "?") + ", built " +
           m.at("build").value("finished_at", "?") + ")";
  }
};

}  // namespace

std::unique_ptr<Step> makeReuseStep() {
  return std::make_unique<ReuseStep>();
}

}  // namespace imgpipe::build
