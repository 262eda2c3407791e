#pragma once

// The one translation of an exception into what a task runner reports (build, fetch, register).

#include <exception>
#include <string>

#include "common/agent/task.h"

namespace imgpipe::agent {

// The message (a failed command's summary, its output lines in outputTail, its exit code), and
// whether the coordinator may run the task again (mayRunAgain of the error's kind).
TaskFailureInfo failureFrom(const std::exception& e, std::string step);
// The same for the exception in flight.
TaskFailureInfo failureFrom(const std::exception_ptr& e, std::string step);

}  // namespace imgpipe::agent
