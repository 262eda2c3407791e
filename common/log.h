#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace imgpipe::log {

// Sets up the process-wide logger: "<time> <level> [<component>] message" on stderr, optionally
// also to a file. `level` is one of trace, debug, info, warn, error.
void init(std::string_view component, std::string_view level = "info",
          const std::string& file = {});

// A logger whose every line carries the job id and the step, so `grep job=42` finds the whole
// story of a job across daemons. Shares the sinks of the process logger.
std::shared_ptr<spdlog::logger> forJob(std::string_view jobId, std::string_view step);

// The process logger with another component name ("zap", "scheduler", ...).
std::shared_ptr<spdlog::logger> named(std::string_view component);

// Text from an untrusted peer, fit for a log line: at most `max` characters, control characters
// escaped, so a hostile name cannot forge log lines or fill the disk.
std::string untrusted(std::string_view text, std::size_t max = 64);

}  // namespace imgpipe::log
