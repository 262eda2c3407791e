#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent-build/runner/build_output.h"

namespace imgpipe::build {

// The parent's reader of the build child's event stream (runner/events.h shows the lines). The
// child runs in the same trust domain as the parent, but it reads images and runs their tools:
// every line is decoded with its types checked here, once, and a line that is not a well-formed
// event is reported as stray instead of throwing in the middle of a build.
struct StepEvent {
  enum class State { started, finished, skipped } state;
  std::string step;
  std::uint64_t durationMs = 0;
  std::string message;
};
struct LogEvent {
  std::string level;  // info, warn, error
  std::string step;
  std::string message;
};
struct ProgressEvent {
  std::string step;
  std::uint64_t done = 0, total = 0, rate = 0, eta = 0;
  std::string unit = "bytes";
};
struct FailedEvent {
  std::string step;
  std::string message;
  int exitCode = 0;
  std::vector<std::string> tail;
  bool retryable = false;
  bool stopped = false;
  nlohmann::json validation = nlohmann::json::object();  // checks made before the failure
};
struct ResultEvent {
  BuildOutput output;     // what the line names; the manifest file's content is read after
  bool baseOnly = false;  // a prepare-base run: sha256, size and virtual size are in the line
};

using ChildEvent = std::variant<StepEvent, LogEvent, ProgressEvent, FailedEvent, ResultEvent>;

// Either an event, or why the line is not one (to be logged as stray output). Never throws.
std::variant<ChildEvent, std::string> decodeChildEvent(std::string_view line);

}  // namespace imgpipe::build
