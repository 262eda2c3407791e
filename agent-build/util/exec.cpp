#include "agent-build/util/exec.h"

#include <fstream>
#include <thread>

namespace imgpipe::build {

SubprocessOptions commandOptions(const ExecContext& ctx, std::vector<std::string> argv) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.stop = ctx.stop;
  o.timeout = ctx.timeout;
  o.onLine = ctx.output;
  return o;
}

std::string run(const ExecContext& ctx, SubprocessOptions options) {
  if (!options.stop.stop_possible()) options.stop = ctx.stop;
  if (!options.onLine) options.onLine = ctx.output;
  if (options.timeout.count() == 0) options.timeout = ctx.timeout;
  return checkCommand(std::move(options));
}

std::string run(const ExecContext& ctx, std::vector<std::string> argv, bool capture) {
  auto o = commandOptions(ctx, std::move(argv));
  o.captureStdout = capture;
  return checkCommand(std::move(o));
}

CommandResult runUnchecked(const ExecContext& ctx, std::vector<std::string> argv, bool capture) {
  auto o = commandOptions(ctx, std::move(argv));
  o.captureStdout = capture;
  return runCommand(std::move(o));
}

std::string runWithReadProgress(const ExecContext& ctx, SubprocessOptions options,
                                std::uint64_t expectedReadBytes,
                                const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  if (!options.stop.stop_possible()) options.stop = ctx.stop;
  if (!options.onLine) options.onLine = ctx.output;
  if (options.timeout.count() == 0) options.timeout = ctx.timeout;
  std::string command = joinCommand(options.argv);
  Subprocess proc(std::move(options));
  const pid_t pid = proc.pid();
  std::jthread watcher([pid, expectedReadBytes, &progress](std::stop_token stop) {
    const std::string ioPath = "/proc/" + std::to_string(pid) + "/io";
    while (!stop.stop_requested()) {
      std::ifstream io(ioPath);
      std::string key;
      std::uint64_t value = 0;
      while (io >> key >> value) {
        if (key == "rchar:") {
          progress(std::min(value, expectedReadBytes), expectedReadBytes);
          break;
        }
      }
      for (int i = 0; i < 5 && !stop.stop_requested(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  CommandResult result = proc.wait();
  watcher.request_stop();
  watcher.join();
  if (result.exitCode != 0 || result.timedOut || result.stopped)
    throw CommandError(std::move(command), std::move(result));
  progress(expectedReadBytes, expectedReadBytes);
  return std::move(result.stdoutText);
}

}  // namespace imgpipe::build
