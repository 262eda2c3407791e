#pragma once

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"

namespace imgpipe::test {

// A daemon started for a test: output to a log file, killed (its whole process group) when the
// object goes away, whatever the test's outcome.
class Daemon {
 public:
  Daemon(std::vector<std::string> argv, std::filesystem::path log,
         std::map<std::string, std::string> env = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return process_ ? process_->pid() : -1; }
  bool running();
  void signal(int sig);
  // Sends SIGKILL and reaps.
  void kill9() { kill(SIGKILL); }
  // Sends `sig` and waits for the process to exit (reaping it).
  void kill(int sig);
  // Waits until the log contains `text`; false on timeout.
  bool waitForLog(const std::string& text, std::chrono::milliseconds timeout) const;
  // SIGTERM, waits; returns the exit code.
  int stop();
  // Waits for it to exit by itself; returns its exit code, or -1 on timeout.
  int waitExit(std::chrono::milliseconds timeout);
  std::string log() const;
  const std::filesystem::path& logPath() const { return log_; }

 private:
  std::unique_ptr<Subprocess> process_;
  std::filesystem::path log_;
  int exitCode_ = -1;
};

struct CommandOutput {
  int exitCode = 0;
  std::string out;
  std::string err;
};
// Runs a command to completion capturing stdout and (separately) stderr.
CommandOutput run(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Polls `condition` every 100 ms until it holds or `timeout` passes.
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A TCP port on 127.0.0.1 that was free a moment ago.
int freePort();

// Where the build tree is (IMGPIPE_BUILD_DIR, set by ctest).
std::filesystem::path buildDir();
std::filesystem::path sourceDir();

}  // namespace imgpipe::test
