#include "agent-build/cli/commands.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "agent-build/runner/build_process.h"
#include "agent-build/runner/work_dir.h"
#include "agent-build/steps/step.h"
#include "agent-build/util/stop_signals.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "common/yaml_reader.h"
#include "definition/bundle.h"
#include "definition/definition_json.h"
#include "definition/parse_definition.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// Prints a build as it goes: one line per finished step, a live progress line on a terminal.
class ConsoleEvents : public BuildEvents {
 public:
  explicit ConsoleEvents(std::FILE* out) : out_(out), tty_(::isatty(::fileno(out)) != 0) {}

  void stepStarted(const std::string& step) override {
    current_ = step;
    if (tty_) std::fprintf(out_, "  %-13s ...\r", step.c_str());
    std::fflush(out_);
  }
  void stepFinished(const std::string& step, std::uint64_t ms,
                    const std::string& summary) override {
    clearLine();
    std::fprintf(out_, "  %-13s %7.1fs  %s\n", step.c_str(), static_cast<double>(ms) / 1000.0,
                 summary.c_str());
    std::fflush(out_);
  }
  void stepSkipped(const std::string& step, const std::string& why) override {
    std::fprintf(out_, "  %-13s %8s  (%s)\n", step.c_str(), "-", why.c_str());
  }
  void log(const std::string& level, const std::string& step, const std::string& message) override {
    clearLine();
    if (level == "info")
      std::fprintf(out_, "  %-13s          %s\n", step.c_str(), message.c_str());
    else
      std::fprintf(out_, "  %-13s %8s  %s\n", step.c_str(), level.c_str(), message.c_str());
    std::fflush(out_);
  }
  void progress(const std::string& step, std::uint64_t done, std::uint64_t total,
                std::uint64_t rate, std::uint64_t eta, const std::string& /*unit*/) override {
    if (!tty_ || total == 0) return;
    std::fprintf(out_, "  %-13s %5.1f%%  %s/s  eta %llus   \r", step.c_str(),
                 100.0 * static_cast<double>(done) / static_cast<double>(total),
                 formatBytes(rate).c_str(), static_cast<unsigned long long>(eta));
    std::fflush(out_);
  }
  void stray(const std::string& line) override {
    clearLine();
    std::fprintf(out_, "  %s\n", line.c_str());
  }

 private:
  void clearLine() {
    if (tty_) std::fprintf(out_, "\33[2K\r");
  }
  std::FILE* out_;
  bool tty_;
  std::string current_;
};

}  // namespace

int validateCommand(int argc, char** argv) {
  CLI::App app{"Validate an image definition without building it"};
  std::string file;
  bool json = false;
  app.add_option("definition", file, "image definition (YAML)")->required();
  app.add_flag("--json", json, "print the parsed definition as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    auto def = definition::loadDefinitionFile(file);
    std::vector<std::string> problems;
    try {
      definition::loadBundle(file);
    } catch (const YamlError&) {
      throw;
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
    if (json) {
      auto j = toJson(def);
      j["planned_steps"] = plannedSteps(def);
      j["problems"] = problems;
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << definition::summarize(def);
      std::string steps;
      for (const auto& s : plannedSteps(def))
        steps += (steps.empty() ? "" : " ") + s;
      std::cout << "  steps        " << steps << "\n";
      for (const auto& p : problems)
        std::cerr << p << "\n";
      if (problems.empty()) std::cout << file << ": OK\n";
    }
    return problems.empty() ? 0 : 2;
  } catch (const YamlError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
}

namespace {
int buildOrPrepare(int argc, char** argv, bool baseOnly);
}

int buildCommand(int argc, char** argv) {
  return buildOrPrepare(argc, argv, false);
}
int prepareBaseCommand(int argc, char** argv) {
  return buildOrPrepare(argc, argv, true);
}

namespace {

int buildOrPrepare(int argc, char** argv, bool baseOnly) {
  CLI::App app{baseOnly ? "Fetch or make a definition's base into the cache"
                        : "Build an image from a definition, here and now, without a coordinator"};
  std::string file, workDir, outDir, cacheDir, configFile, jobId;
  bool keepWorkDir = false, json = false;
  app.add_option("definition", file, "image definition (YAML)")->required();
  app.add_option("--work-dir", workDir, "where the build works (sparse raw disk, mounts)")
      ->required();
  auto* outOption = app.add_option("--out", outDir, "where the image, manifest and build log go");
  if (!baseOnly) outOption->required();
  app.add_option("--cache-dir", cacheDir,
                 "bases, apt cache and earlier results (default: build.cache_dir)");
  app.add_option("--config", configFile, "an agent config file whose build: section to use");
  app.add_option("--job-id", jobId, "job id for logs and the manifest (default: local-<time>)");
  std::vector<std::string> baseDirs;
  app.add_option("--base-dir", baseDirs,
                 "a directory `base: path:` may name, besides the config's base_dirs (repeatable)");
  app.add_flag("--keep-work-dir", keepWorkDir, "keep the work dir, even after a successful build");
  app.add_flag("--json", json, "print the manifest on stdout (progress goes to stderr)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto stop = stopOnTerminationSignals();

  log::init("imgpipe-agent-build", "info");
  JobSpec job;
  definition::Bundle bundle;
  try {
    if (!configFile.empty()) job.config = loadBuildConfig(configFile);
    for (const auto& d : baseDirs)
      job.config.baseDirs.push_back(fs::absolute(d));
    // The same bundle `imgpipe submit` sends: files from beside the definition, nowhere else.
    bundle = definition::loadBundle(file);
    // Merged once here; the build reads the merged text, never the layers again.
    auto merged = definition::mergedDefinition(bundle);
    auto def = definition::parseDefinition(merged.reader());
    job.definitionText = merged.text();
    job.definitionSource = file;
    job.definitionDigest = bundle.digest();
    job.imageVersion = definition::versionAt(def, std::chrono::system_clock::now());
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  job.config.workDir = fs::absolute(workDir);
  if (!cacheDir.empty()) job.config.cacheDir = fs::absolute(cacheDir);
  if (!outDir.empty()) job.outDir = fs::absolute(outDir);
  job.keepWorkDir = keepWorkDir;
  job.baseOnly = baseOnly;
  job.jobId = jobId.empty() ? "local-" + definition::deriveVersion(std::chrono::system_clock::now())
                            : jobId;
  if (job.config.helper == "/proc/self/exe") job.config.helper = fs::read_symlink("/proc/self/exe");
  fs::create_directories(job.config.workDir);
  cleanStaleWorkDirs(job.config.workDir, job.config.keepFailedWorkDir);
  std::optional<TempDir> bundleDir;
  if (bundle.files.size() > 1) {
    bundleDir.emplace(job.config.workDir, "bundle-");
    definition::writeBundle(bundle, bundleDir->path());
    job.bundleDir = bundleDir->path();
  }

  std::FILE* out = json ? stderr : stdout;
  std::fprintf(out, "building %s (job %s)\n", file.c_str(), job.jobId.c_str());
  ConsoleEvents events(out);
  const auto start = std::chrono::steady_clock::now();
  auto outcome = runBuild(job, events, stop.get_token());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (outcome.output && baseOnly) {
    std::fprintf(out, "base %s\n  sha256 %s\n", outcome.output->image.c_str(),
                 outcome.output->sha256Hex.c_str());
    if (json)
      std::cout << nlohmann::json{{"base", outcome.output->image.string()},
                                  {"sha256", outcome.output->sha256Hex}}
                       .dump()
                << "\n";
    return 0;
  }
  if (outcome.output) {
    const auto& o = *outcome.output;
    std::fprintf(out,
                 "built %s %s in %.1f s%s\n  image     %s\n  size      %s (virtual %s)\n  sha256   "
                 " %s\n  manifest  %s\n  build log %s\n",
                 o.imageName.c_str(), o.imageVersion.c_str(), secs,
                 o.reused ? " (reused an identical earlier build)" : "", o.image.c_str(),
                 formatBytes(o.size).c_str(), formatBytes(o.virtualSize).c_str(),
                 o.sha256Hex.c_str(), o.manifestFile.c_str(), o.buildLog.c_str());
    if (json) {
      std::cout << o.manifestJson;
    } else {
      // The manifest, with its package list (hundreds of lines) shortened to a count.
      auto m = nlohmann::json::parse(o.manifestJson);
      m["packages"] = std::to_string(m["packages"].size()) + " packages (see the manifest file)";
      m["validation"]["checks"] = std::to_string(m["validation"]["checks"].size()) + " checks";
      std::fprintf(out, "manifest:\n%s\n", m.dump(2).c_str());
    }
    return 0;
  }
  const auto& f = *outcome.failure;
  std::fprintf(out, "build failed in step %s after %.1f s: %s\n", f.step.c_str(), secs,
               f.message.c_str());
  if (f.exitCode != 0) std::fprintf(out, "  exit code %d\n", f.exitCode);
  if (!f.outputTail.empty()) {
    std::fprintf(out, "  last output:\n");
    for (const auto& l : f.outputTail)
      std::fprintf(out, "    %s\n", l.c_str());
  }
  return f.stopped ? 3 : 1;
}

}  // namespace

}  // namespace imgpipe::build
