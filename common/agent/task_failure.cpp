#include "common/agent/task_failure.h"

#include "common/error.h"
#include "common/subprocess.h"

namespace imgpipe::agent {

TaskFailureInfo failureFrom(const std::exception& e, std::string step) {
  TaskFailureInfo f;
  f.step = std::move(step);
  f.retryable = mayRunAgain(kindOf(e));
  if (const auto* command = dynamic_cast<const CommandError*>(&e)) {
    f.message = command->summary();
    f.exitCode = command->result().exitCode;
    f.outputTail = command->result().tail;
  } else {
    f.message = e.what();
  }
  return f;
}

TaskFailureInfo failureFrom(const std::exception_ptr& e, std::string step) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return failureFrom(ex, std::move(step));
  } catch (...) {
    TaskFailureInfo f;
    f.step = std::move(step);
    f.message = "unknown exception";
    return f;
  }
}

}  // namespace imgpipe::agent
