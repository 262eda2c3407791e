#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/subprocess.h"

namespace imgpipe::build {

// How a build runs its commands: every command gets the build's stop token, a timeout, and its
// output lines streamed into the build log. Value type, cheap to copy.
struct ExecContext {
  std::stop_token stop;
  std::function<void(std::string_view line)> output;  // may be empty
  std::chrono::milliseconds timeout{30 * 60 * 1000};
};

SubprocessOptions commandOptions(const ExecContext& ctx, std::vector<std::string> argv);

// Runs to completion; throws CommandError (command, exit code, last lines) unless it exits 0.
// Returns stdout when `capture` is set (stdout then is not streamed to the log).
std::string run(const ExecContext& ctx, std::vector<std::string> argv, bool capture = false);
// Same, with full control over the options (input, env, timeout...).
std::string run(const ExecContext& ctx, SubprocessOptions options);
// Never throws for a non-zero exit.
CommandResult runUnchecked(const ExecContext& ctx, std::vector<std::string> argv,
                           bool capture = false);

// Runs a command and reports progress from how many bytes it has read so far (/proc/<pid>/io
// rchar) against `expectedReadBytes`: qemu-img prints its progress with carriage returns only,
// which a line-based reader cannot follow. `progress(done, total)` is called about twice a second.
std::string runWithReadProgress(const ExecContext& ctx, SubprocessOptions options,
                                std::uint64_t expectedReadBytes,
                                const std::function<void(std::uint64_t, std::uint64_t)>& progress);

}  // namespace imgpipe::build
