#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace imgpipe {

struct SubprocessOptions {
  std::vector<std::string> argv;
  std::filesystem::path cwd;               // empty: inherit
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited environment
  bool clearEnv = false;                   // start from an empty environment plus `env`
  std::string input;                       // written to stdin, then closed; empty: /dev/null
  bool captureStdout = false;              // keep stdout verbatim instead of streaming lines
  std::function<void(std::string_view line)> onLine;  // every output line as it arrives
  size_t tailLines = 40;                              // lines kept for error reports
  std::chrono::milliseconds timeout{0};               // 0: none
  std::stop_token stop;                               // a stop request terminates the child
  std::chrono::milliseconds killGrace{5000};          // SIGTERM -> SIGKILL delay
  // The child's stdin, stdout and stderr are these descriptors (not owned) instead, where one is
  // >= 0: a command run on another process's behalf (ansible's chroot connection), its output
  // going to that process, not to onLine or the tail.
  int stdinFd = -1, stdoutFd = -1, stderrFd = -1;
};

struct CommandResult {
  int exitCode = 0;  // 128 + signal number when killed by a signal
  bool timedOut = false;
  bool stopped = false;    // terminated because of a stop request
  std::string stdoutText;  // only with captureStdout
  std::vector<std::string> tail;
};

// A command that failed: names the command, its exit status and the last lines it printed.
// Its kind: stopped when it was stopped, else `kind` (transient for, say, a mirror that did not
// answer).
class CommandError : public Error {
 public:
  CommandError(std::string command, CommandResult result, ErrorKind kind = ErrorKind::failed);
  const std::string& command() const { return command_; }
  const CommandResult& result() const { return result_; }
  // "command failed: X (exit code N)", without the output lines what() ends with.
  const std::string& summary() const { return summary_; }

 private:
  std::string command_;
  CommandResult result_;
  std::string summary_;
};

// A running child process, in its own process group, killed (the whole group) if this object is
// destroyed before it was waited for. The child also receives SIGKILL if the spawning thread
// dies, so a crashed agent does not leave an apt-get running in a chroot.
class Subprocess {
 public:
  explicit Subprocess(SubprocessOptions options);
  ~Subprocess();
  Subprocess(Subprocess&&) noexcept;
  Subprocess& operator=(Subprocess&&) = delete;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Streams output until the child exits (or times out / is stopped) and reaps it.
  CommandResult wait();
  // SIGTERM to the group, SIGKILL after the grace period; reaps the child.
  void terminate();
  // Without blocking: the exit code if the child has exited (reaping it), else nullopt.
  std::optional<int> poll();

 private:
  void pump(CommandResult& result);
  void reap(CommandResult& result);

  SubprocessOptions options_;
  pid_t pid_ = -1;
  UniqueFd stdinFd_, stdoutFd_, stderrFd_;
  std::deque<std::string> tail_;
};

// Runs to completion; never throws for a non-zero exit.
CommandResult runCommand(SubprocessOptions options);
// Runs to completion; throws CommandError unless the exit code is 0. Returns stdout when
// captureStdout is set.
std::string checkCommand(SubprocessOptions options);
std::string checkCommand(std::vector<std::string> argv);

std::string shellQuote(std::string_view arg);
std::string joinCommand(const std::vector<std::string>& argv);

}  // namespace imgpipe
