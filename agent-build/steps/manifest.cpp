// Step 10: publishes the result — the image, its build log and the manifest (sizes, SHA-256 and
// SHA-512, definition and base digests, installed packages, validation, build log digest, step
// timings, the resolved Glance registration) — into the output directory, and records it for
// reuse. It runs last so that the manifest can hold every other step's timing and outcome.
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "agent-build/runner/result_cache.h"
#include "agent-build/steps/step.h"
#include "agent-build/util/file_lock.h"
#include "common/file_util.h"
#include "common/units.h"
#include "definition/outputs.h"
#include "definition/resolved_glance.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Moves (or hard-links, for a reused image) `from` to `to` through a temporary name, falling
// back to a copy across filesystems.
void place(const fs::path& from, const fs::path& to, bool keepSource) {
  std::error_code same;
  if (fs::equivalent(from, to, same)) return;  // reusing the very file (same name and version)
  fs::path tmp = to;
  tmp += ".partial";
  std::error_code ec;
  fs::remove(tmp, ec);
  if (keepSource) {
    fs::create_hard_link(from, tmp, ec);
    if (ec) fs::copy_file(from, tmp);
  } else {
    fs::rename(from, tmp, ec);
    if (ec) {
      fs::copy_file(from, tmp);
      fs::remove(from);
    }
  }
  fs::rename(tmp, to);
}

// Keeps the newest `keep` version directories of an image name.
void pruneOutputs(const fs::path& nameDir, unsigned keep, const fs::path& current, BuildLog& log) {
  std::vector<fs::directory_entry> versions;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(nameDir, ec))
    if (e.is_directory()) versions.push_back(e);
  if (versions.size() <= keep) return;
  std::sort(versions.begin(), versions.end(),
            [](const auto& a, const auto& b) { return a.last_write_time() > b.last_write_time(); });
  for (size_t i = keep; i < versions.size(); ++i) {
    if (versions[i].path() == current) continue;
    fs::remove_all(versions[i].path(), ec);
    log.info("pruned old output " + versions[i].path().string() +
             " (build.results.keep_per_image)");
  }
}

std::vector<definition::OutputDigests> outputDigestsOf(const BuildContext& ctx, const json& image,
                                                       const fs::path& isoFile) {
  std::vector<definition::OutputDigests> outs;
  for (auto kind : ctx.def.outputs) {
    switch (kind) {
      case definition::OutputKind::qcow2:
        outs.push_back({kind, image.at("size").get<std::uint64_t>(),
                        image.at("sha256").get<std::string>(),
                        image.at("sha512").get<std::string>()});
        break;
      case definition::OutputKind::raw:
        if (!ctx.rawDigests) throw Error("the raw output has no digests (raw_digests did not run)");
        outs.push_back({kind, ctx.rawDigests->size, toHex(ctx.rawDigests->sha256),
                        toHex(ctx.rawDigests->sha512)});
        break;
      case definition::OutputKind::iso:
        if (!ctx.isoDigests) throw Error("the iso output has no digests (live_iso did not run)");
        outs.push_back({kind, ctx.isoDigests->size, toHex(ctx.isoDigests->sha256),
                        toHex(ctx.isoDigests->sha512), isoFile.filename().string()});
        break;
    }
  }
  return outs;
}

class ManifestStep : public Step {
 public:
  std::string_view name() const override { return "manifest"; }
  bool runsWhenReused() const override { return true; }

  std::string run(BuildContext& ctx) override {
    const bool agentLayout = ctx.job.outDir.empty();
    auto outDirFor = [&] {
      return agentLayout ? ctx.config.outputDir / ctx.def.name / ctx.version : ctx.job.outDir;
    };
    // The version is the job's (unique per image at the coordinator); a second attempt of the
    // same job replaces the first one's output, one writer at a time.
    const fs::path outDir = outDirFor();
    fs::create_directories(outDir);
    FileLock versionLock(outDir / ("." + outputStem(ctx) + ".lock"), ctx.stop);
    const std::string stem = outputStem(ctx);
    ctx.finalImage = outDir / (stem + ".qcow2");
    ctx.finalManifest = outDir / (stem + ".manifest.json");
    ctx.finalLog = outDir / (stem + ".build.log");

    json image, packages, validation;
    std::string compression = std::string(toString(effectiveCompression(ctx.def, ctx.config)));
    json reusedFrom = nullptr;
    if (ctx.reusable) {
      const auto& old = ctx.reusable->manifest;
      place(ctx.reusable->image, ctx.finalImage, true);
      image = old.at("image");
      packages = old.at("packages");
      validation = old.at("validation");
      reusedFrom = {{"job_id", old.at("build").value("job_id", "")},
                    {"version", old.at("image").value("version", "")},
                    {"finished_at", old.at("build").value("finished_at", "")}};
    } else {
      place(ctx.output, ctx.finalImage, false);
      image = {{"size", ctx.outputDigests.size},
               {"virtual_size", ctx.outputInfo.virtualSize},
               {"sha256", toHex(ctx.outputDigests.sha256)},
               {"sha512", toHex(ctx.outputDigests.sha512)},
               {"compression", compression}};
      packages = json::array();
      for (const auto& p : ctx.packages)
        packages.push_back(
            {{"name", p.name}, {"version", p.version}, {"architecture", p.architecture}});
      validation = ctx.validation;
    }
    // Files published beside the image, each under this version's name.
    const fs::path isoFile = outDir / (stem + ".iso");
    json outputs;
    if (ctx.reusable && ctx.reusable->manifest.contains("outputs")) {
      auto reused = definition::outputDigestsFromJson(ctx.reusable->manifest.at("outputs"));
      for (auto& o : reused) {
        if (o.file.empty()) continue;
        const fs::path to = outDir / (stem + fs::path(o.file).extension().string());
        place(ctx.reusable->image.parent_path() / o.file, to, true);
        o.file = to.filename().string();
      }
      outputs = definition::toJson(reused);
    } else {
      if (!ctx.reusable && !ctx.liveIso.empty()) place(ctx.liveIso, isoFile, false);
      outputs = definition::toJson(outputDigestsOf(ctx, image, isoFile));
    }
    image["name"] = ctx.def.name;
    image["version"] = ctx.version;
    image["file"] = ctx.finalImage.filename().string();
    image["format"] = "qcow2";

    ctx.log.flush();
    const std::string logText = readFile(ctx.log.file());
    writeFileAtomic(ctx.finalLog, logText);

    json steps = json::array();
    for (const auto& t : ctx.timings)
      steps.push_back({{"step", t.step}, {"duration_ms", t.durationMs}, {"status", t.status}});
    json manifest = {
        {"format", "imgpipe-build-manifest/1"},
        {"image", image},
        {"definition",
         {{"source", ctx.def.sourceName},
          {"digest", ctx.job.definitionDigest},
          {"content_digest", ctx.contentDigest}}},
        {"base",
         {{"kind", ctx.base.kind},
          {"source", ctx.base.source},
          {"sha256", ctx.base.sha256Hex},
          {"format", ctx.base.format},
          {"virtual_size", ctx.base.virtualSize}}},
        {"recipe_version", kRecipeVersion},
        {"build",
         {{"job_id", ctx.job.jobId},
          {"attempt", ctx.job.attempt},
          {"agent", ctx.job.agentName},
          {"started_at", isoTime(ctx.startedAt)},
          {"finished_at", isoTime(std::chrono::system_clock::now())},
          {"qemu_img", ctx.toolVersion},
          {"attach", std::string(toString(resolveAttachMethod(ctx.config.attach)))},
          {"parallel_compression", ctx.config.parallelCompression},
          {"reused_from", reusedFrom}}},
        {"steps", steps},
        {"packages", packages},
        {"validation", validation},
        // What each controller registers, by kind, and the digests it checks.
        {"outputs", outputs},
        {"build_log",
         {{"file", ctx.finalLog.filename().string()},
          {"sha256", toHex(sha256(logText))},
          {"bytes", logText.size()}}},
        // The registration, resolved once, here: the glance agent registers exactly this.
        {"glance", definition::toJson(
                       definition::resolveGlance(ctx.def.glance, ctx.def.name, ctx.version,
                                                 image.at("virtual_size").get<std::uint64_t>()))}};
    ctx.manifestJson = manifest.dump(2) + "\n";
    writeFileAtomic(ctx.finalManifest, ctx.manifestJson);
    std::error_code ec;
    fs::remove(outDir / ("." + stem + ".lock"), ec);

    if (!ctx.reusable && ctx.config.reuseResults)
      ResultCache(ctx.config.cacheDir).store(ctx.contentDigest, ctx.finalImage, manifest);
    if (agentLayout) pruneOutputs(outDir.parent_path(), ctx.config.keepOutputs, outDir, ctx.log);
    return ctx.finalImage.string() + " (" + formatBytes(image.at("size").get<std::uint64_t>()) +
           ", sha256 " + image.at("sha256").get<std::string>().substr(0, 16) + "...)" +
           (ctx.reusable ? " reused" : "");
  }
};

}  // namespace

std::unique_ptr<Step> makeManifestStep() {
  return std::make_unique<ManifestStep>();
}

}  // namespace imgpipe::build
