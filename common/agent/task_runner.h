#pragma once

#include <memory>
#include <stop_token>
#include <vector>

#include "common/agent/task.h"

namespace imgpipe::agent {

// How a running task talks back to the coordinator. Thread-safe: task threads call it freely.
// progress() is best-effort and rate-limited; log/completed/failed are delivered reliably
// (kept and re-sent across reconnects until the coordinator acknowledges them).
class TaskReporter {
 public:
  virtual ~TaskReporter() = default;
  virtual void progress(const ProgressInfo& info) = 0;
  virtual void log(LogLevel level, const std::string& step, const std::string& message,
                   std::uint64_t durationMs = 0) = 0;
  virtual void completed(const TaskResultInfo& result) = 0;
  virtual void failed(const TaskFailureInfo& failure) = 0;
};

// The role-specific part of an agent. The session runs each task on its own thread and calls
// run() there; run() blocks until the task ends, and returns early (reporting failure) once
// `stop` is requested — a cancel from the coordinator, fencing, or agent shutdown.
// A run() that returns without completed()/failed() counts as a failure; an exception that
// escapes it is reported as a failure with its message.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  virtual void run(const TaskSpec& task, TaskReporter& reporter, std::stop_token stop) = 0;

  // Called on the session thread; must not block.
  virtual void onGrant(const GrantSpec& /*grant*/) {}
  virtual std::vector<ArtifactInfo> inventory() { return {}; }
  virtual std::uint64_t freeBytes() { return 0; }
};

}  // namespace imgpipe::agent
