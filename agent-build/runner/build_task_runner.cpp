#include "agent-build/runner/build_task_runner.h"

#include <optional>

#include "agent-build/runner/build_process.h"
#include "agent-build/runner/validation_checks.h"
#include "agent-build/runner/work_dir.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "definition/bundle.h"
#include "definition/parse_definition.h"

namespace imgpipe::build {
namespace {

// Forwards a build's events to the coordinator (through the TaskReporter) and to the agent's
// log, every line carrying job= and step=.
class ReporterEvents : public BuildEvents {
 public:
  ReporterEvents(agent::TaskReporter& reporter, std::string jobId)
      : reporter_(reporter), jobId_(std::move(jobId)) {}

  void stepStarted(const std::string& step) override { log::forJob(jobId_, step)->info("started"); }
  void stepFinished(const std::string& step, std::uint64_t ms,
                    const std::string& summary) override {
    log::forJob(jobId_, step)
        ->info("done in {}: {}", formatDuration(std::chrono::milliseconds(ms)), summary);
    reporter_.log(agent::LogLevel::info, step, summary, ms);
  }
  void stepSkipped(const std::string& step, const std::string& why) override {
    log::forJob(jobId_, step)->debug("skipped: {}", why);
  }
  void log(const std::string& level, const std::string& step, const std::string& message) override {
    auto l = log::forJob(jobId_, step);
    if (level == "warn") {
      l->warn("{}", message);
      reporter_.log(agent::LogLevel::warn, step, message);
    } else if (level == "error") {
      l->error("{}", message);
    } else {
      l->info("{}", message);
    }
  }
  void progress(const std::string& step, std::uint64_t done, std::uint64_t total,
                std::uint64_t rate, std::uint64_t eta, const std::string& unit) override {
    agent::ProgressInfo p;
    p.step = step;
    p.done = done;
    p.total = total;
    p.rateBps = unit == "bytes" ? rate : 0;
    p.etaS = static_cast<std::uint32_t>(eta);
    p.unit = unit;
    reporter_.progress(p);
  }
  void stray(const std::string& line) override {
    log::forJob(jobId_, "")->warn("build process: {}", line);
  }

 private:
  agent::TaskReporter& reporter_;
  std::string jobId_;
};

constexpr std::string_view kBundleDirPrefix = "bundle-";

// Bundle directories of tasks that were running when the agent died.
void removeStaleBundles(const std::filesystem::path& workDir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(workDir, ec))
    if (e.is_directory() && e.path().filename().string().starts_with(kBundleDirPrefix))
      std::filesystem::remove_all(e.path(), ec);
}

}  // namespace

agent::ArtifactInfo artifactFromOutput(const BuildOutput& output) {
  agent::ArtifactInfo a;
  a.id = output.sha256Hex;
  a.sha512 = output.sha512Hex;
  a.size = output.size;
  a.virtualSize = output.virtualSize;
  a.manifestDigest = toHex(sha256(output.manifestJson));
  a.imageName = output.imageName;
  a.imageVersion = output.imageVersion;
  return a;
}

BuildTaskRunner::BuildTaskRunner(BuildConfig config, Publish publish, std::string agentName)
    : config_(std::move(config)), publish_(std::move(publish)), agentName_(std::move(agentName)) {}

std::uint64_t BuildTaskRunner::freeBytes() {
  try {
    return imgpipe::freeBytes(config_.workDir);
  } catch (const Error&) {
    return 0;
  }
}

void BuildTaskRunner::run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
                          std::stop_token stop) {
  const auto* spec = std::get_if<agent::BuildSpec>(&task.kind);
  if (spec == nullptr) {
    reporter.failed({.step = "build", .message = "a build agent runs only build tasks"});
    return;
  }
  auto jobLog = log::forJob(task.jobId, "definition");
  // The bundle is checked here as at the coordinator: its paths, its limits, every file the
  // definition refers to present.
  definition::Bundle bundle = definition::bundleOf(
      spec->definitionName.empty() ? "definition.yaml" : spec->definitionName, spec->definition);
  definition::ImageDefinition def;
  std::optional<definition::MergedDefinition> merged;  // the definition with its layers
  try {
    for (const auto& [path, content] : spec->bundleFiles)
      if (!bundle.files.emplace(path, content).second)
        throw Error("the definition bundle holds '" + path + "' twice");
    merged = definition::mergedDefinition(bundle);
    def = definition::parseDefinition(merged->reader());
    definition::checkBundle(bundle, def);
    if (!spec->definitionDigest.empty() && spec->definitionDigest != bundle.digest())
      throw Error("the definition and its files have digest " + bundle.digest() +
                  ", the task says " + spec->definitionDigest + "; refusing a changed bundle");
  } catch (const std::exception& e) {
    jobLog->error("{}", e.what());
    reporter.failed({.step = "definition", .message = e.what()});
    return;
  }
  // Not in the constructor: `--check-config` builds the runner too and must touch no disk.
  std::call_once(started_, [&] {
    std::filesystem::create_directories(config_.workDir);
    if (int n = cleanStaleWorkDirs(config_.workDir, config_.keepFailedWorkDir); n > 0)
      log::named("build")->info("removed {} work directories left by builds that did not finish",
                                n);
    removeStaleBundles(config_.workDir);
  });
  cleanStaleWorkDirs(config_.workDir, config_.keepFailedWorkDir);

  // The bundle's files, for the build child to read beneath; gone when the task ends.
  std::optional<TempDir> bundleDir;
  if (bundle.files.size() > 1) {
    bundleDir.emplace(config_.workDir, kBundleDirPrefix);
    definition::writeBundle(bundle, bundleDir->path());
  }

  JobSpec job;
  job.jobId = task.jobId;
  job.attempt = task.attempt;
  job.agentName = agentName_;
  job.definitionText = merged->text();
  job.definitionSource = bundle.rootPath;
  job.bundleDir = bundleDir ? bundleDir->path() : std::filesystem::path();
  job.definitionDigest = bundle.digest();
  // Fixed at submit; a task without one (a test driving the runner directly) is submitted now.
  job.imageVersion = spec->imageVersion.empty()
                         ? definition::versionAt(def, std::chrono::system_clock::now())
                         : spec->imageVersion;
  job.config = config_;

  ReporterEvents events(reporter, task.jobId);
  auto outcome = runBuild(job, events, stop);
  if (outcome.output) {
    std::vector<agent::ArtifactInfo> artifacts;
    try {
      const BuildOutput& out = *outcome.output;
      if (out.files.empty() || out.files.front().kind != definition::OutputKind::qcow2)
        throw Error("the build reported no qcow2 to publish");
      for (const auto& file : out.files) {
        auto a = publish_(out, file);
        if (a.id != file.sha256Hex)
          throw Error(file.file.string() + " was stored with sha256 " + a.id +
                      ", the build manifest says " + file.sha256Hex);
        // Whatever stored it, what the controllers may make of each file is the build's to say.
        a.outputs.clear();
        for (const auto& name : out.outputs)
          if (auto kind = definition::parseOutputKind(name);
              kind && definition::carrierOf(*kind) == file.kind)
            a.outputs.push_back(name);
        a.kind = definition::toString(file.kind);
        artifacts.push_back(std::move(a));
      }
    } catch (const std::exception& e) {
      reporter.failed({.step = "publish",
                       .message = std::string("cannot publish the image: ") + e.what(),
                       .retryable = true});
      return;
    }
    log::forJob(task.jobId, "manifest")
        ->info("built {} {} ({}, sha256 {})", outcome.output->imageName,
               outcome.output->imageVersion, formatBytes(outcome.output->size),
               outcome.output->sha256Hex);
    agent::TaskResultInfo result;
    result.artifact = artifacts.front();
    result.moreArtifacts.assign(artifacts.begin() + 1, artifacts.end());
    result.detail = outcome.output->imageName + " " + outcome.output->imageVersion +
                    (outcome.output->reused ? " (reused an identical earlier build)" : "");
    result.checks = checksFromValidation(outcome.output->validation);
    reporter.completed(result);
    return;
  }
  const auto& f = *outcome.failure;
  log::forJob(task.jobId, f.step)->error("build failed: {}", f.message);
  reporter.failed({.step = f.step,
                   .message = f.message,
                   .exitCode = f.exitCode,
                   .outputTail = f.outputTail,
                   .retryable = f.retryable,
                   .checks = checksFromValidation(f.validation)});
}

}  // namespace imgpipe::build
