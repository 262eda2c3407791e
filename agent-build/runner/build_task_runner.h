#pragma once

#include <functional>
#include <mutex>
#include <string>

#include "agent-build/config/build_config.h"
#include "agent-build/runner/build_output.h"
#include "common/agent/task_runner.h"

namespace imgpipe::build {

// The build agent's TaskRunner: each BuildSpec task runs as one build child (runBuild), its
// steps reported to the coordinator as they end (name, duration, summary), progress forwarded,
// and every file of the finished build (BuildOutput::files) handed to `publish` (the artifact
// store), whose ArtifactInfos are the task's result. Several tasks may run at once (the agent's
// capacity); each has its own work dir, loop devices and mount namespace.
class BuildTaskRunner : public agent::TaskRunner {
 public:
  // Stores one file of the build as an artifact; returns what the store made of it.
  using Publish = std::function<agent::ArtifactInfo(const BuildOutput&, const OutputFile&)>;

  BuildTaskRunner(BuildConfig config, Publish publish, std::string agentName = {});

  void run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
           std::stop_token stop) override;
  std::uint64_t freeBytes() override;

  const BuildConfig& config() const { return config_; }

 private:
  BuildConfig config_;
  Publish publish_;
  std::string agentName_;
  std::once_flag started_;
};

// An ArtifactInfo straight from a BuildOutput (manifestDigest = sha256 of the manifest JSON).
agent::ArtifactInfo artifactFromOutput(const BuildOutput& output);

}  // namespace imgpipe::build
