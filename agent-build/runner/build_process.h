#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent-build/runner/build_output.h"
#include "agent-build/runner/job_spec.h"

namespace imgpipe::build {

// What the parent hears from a running build, as it happens.
class BuildEvents {
 public:
  virtual ~BuildEvents() = default;
  virtual void stepStarted(const std::string& /*step*/) {}
  virtual void stepFinished(const std::string& /*step*/, std::uint64_t /*durationMs*/,
                            const std::string& /*summary*/) {}
  virtual void stepSkipped(const std::string& /*step*/, const std::string& /*why*/) {}
  virtual void log(const std::string& /*level*/, const std::string& /*step*/,
                   const std::string& /*message*/) {}
  virtual void progress(const std::string& /*step*/, std::uint64_t /*done*/,
                        std::uint64_t /*total*/, std::uint64_t /*rateBps*/, std::uint64_t /*etaS*/,
                        const std::string& /*unit*/) {}
  // A line the child printed outside the event protocol (a crash message, a warning).
  virtual void stray(const std::string& /*line*/) {}
};

struct BuildFailure {
  std::string step;
  std::string message;
  int exitCode = 0;
  std::vector<std::string> outputTail;
  bool retryable = false;
  bool stopped = false;
  nlohmann::json validation;  // the checks made before the failure (the manifest's shape)
};

struct StepRecord {
  std::string step;
  std::uint64_t durationMs = 0;
  std::string status;  // ok, skipped
  std::string summary;
};

struct BuildOutcome {
  std::optional<BuildOutput> output;    // set on success
  std::optional<BuildFailure> failure;  // set otherwise
  std::vector<StepRecord> steps;
};

// Runs one build in its own child process (`<config.helper> run-build`, see build_child.h) and
// follows its events. A stop request sends the child SIGTERM and waits for it to unwind (at
// most `unwindGrace`, then SIGKILL — the namespaces still guarantee no mount or device stays).
// Returns only once the child has exited, so a reported failure means nothing is left behind.
BuildOutcome runBuild(const JobSpec& job, BuildEvents& events, std::stop_token stop,
                      std::chrono::milliseconds unwindGrace = std::chrono::minutes(2));

}  // namespace imgpipe::build
