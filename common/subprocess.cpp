#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace imgpipe {
namespace {

using Clock = std::chrono::steady_clock;

void setNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

std::pair<UniqueFd, UniqueFd> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throwErrno("pipe2");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Splits a stream into lines, keeping an unterminated remainder for the next read.
struct LineSplitter {
  std::string pending;
  template <typename F>
  void feed(std::string_view data, F&& emit) {
    pending.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
      emit(std::string_view(pending).substr(start, nl - start));
    pending.erase(0, start);
    // A line longer than this is emitted in pieces rather than buffered without bound.
    if (pending.size() > 64 * 1024) {
      emit(pending);
      pending.clear();
    }
  }
  template <typename F>
  void flush(F&& emit) {
    if (!pending.empty()) emit(pending);
    pending.clear();
  }
};

}  // namespace

namespace {

std::string commandSummary(const std::string& command, const CommandResult& result) {
  std::string msg = "command failed: " + command;
  if (result.timedOut)
    msg += " (timed out)";
  else if (result.stopped)
    msg += " (stopped)";
  else if (result.exitCode > 128)
    msg += " (killed by signal " + std::to_string(result.exitCode - 128) + ")";
  else
    msg += " (exit code " + std::to_string(result.exitCode) + ")";
  return msg;
}

std::string withTail(std::string msg, const CommandResult& result) {
  if (!result.tail.empty()) {
    msg += "; last output:";
    for (const auto& l : result.tail)
      msg += "\n  " + l;
  }
  return msg;
}

}  // namespace

CommandError::CommandError(std::string command, CommandResult result, ErrorKind kind)
    : Error(withTail(commandSummary(command, result), result),
            result.stopped ? ErrorKind::stopped : kind),
      command_(std::move(command)),
      result_(std::move(result)),
      summary_(commandSummary(command_, result_)) {}

std::string shellQuote(std::string_view arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789@%+=:,./-_") == std::string_view::npos)
    return std::string(arg);
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  return out + "'";
}

std::string joinCommand(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out.push_back(' ');
    out += shellQuote(a);
  }
  return out;
}

Subprocess::Subprocess(SubprocessOptions options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw std::invalid_argument("Subprocess: empty argv");

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (auto& a : options_.argv)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> envStrings;
  if (!options_.clearEnv) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view kv(*e);
      auto eq = kv.find('=');
      if (eq != std::string_view::npos && options_.env.count(std::string(kv.substr(0, eq))))
        continue;
      envStrings.emplace_back(kv);
    }
  }
  for (const auto& [k, v] : options_.env)
    envStrings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : envStrings)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  auto [inR, inW] = makePipe();
  auto [outR, outW] = makePipe();
  auto [errR, errW] = makePipe();
  auto [execR, execW] = makePipe();  // reports exec failure; closed by a successful exec
  const bool feedInput = !options_.input.empty() && options_.stdinFd < 0;
  const int stdinFd = options_.stdinFd, stdoutFd = options_.stdoutFd, stderrFd = options_.stderrFd;
  const pid_t parent = ::getpid();
  const char* cwd = options_.cwd.empty() ? nullptr : options_.cwd.c_str();

  pid_t pid = ::fork();
  if (pid < 0) throwErrno("fork for " + options_.argv[0]);
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Signal dispositions and the mask are inherited; give the command default ones.
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD})
      ::signal(sig, SIG_DFL);
    if (stdinFd >= 0)
      ::dup2(stdinFd, 0);
    else
      ::dup2(feedInput ? inR.get() : ::open("/dev/null", O_RDONLY), 0);
    ::dup2(stdoutFd >= 0 ? stdoutFd : outW.get(), 1);
    ::dup2(stderrFd >= 0 ? stderrFd : errW.get(), 2);
    if (cwd != nullptr && ::chdir(cwd) != 0) {
      int err = errno;
      (void)!::write(execW.get(), &err, sizeof err);
      ::_exit(127);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    int err = errno;
    (void)!::write(execW.get(), &err, sizeof err);
    ::_exit(127);
  }
  pid_ = pid;
  inR.reset();
  outW.reset();
  errW.reset();
  execW.reset();
  int err = 0;
  ssize_t n;
  do
    n = ::read(execR.get(), &err, sizeof err);
  while (n < 0 && errno == EINTR);
  if (n == sizeof err) {
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    throw Error("cannot run " + options_.argv[0] +
                (cwd != nullptr ? " in " + options_.cwd.string() : "") + ": " + std::strerror(err));
  }
  if (feedInput) {
    stdinFd_ = std::move(inW);
    setNonBlocking(stdinFd_.get());
  }
  if (stdoutFd < 0) {
    stdoutFd_ = std::move(outR);
    setNonBlocking(stdoutFd_.get());
  }
  if (stderrFd < 0) {
    stderrFd_ = std::move(errR);
    setNonBlocking(stderrFd_.get());
  }
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : options_(std::move(other.options_)),
      pid_(std::exchange(other.pid_, -1)),
      stdinFd_(std::move(other.stdinFd_)),
      stdoutFd_(std::move(other.stdoutFd_)),
      stderrFd_(std::move(other.stderrFd_)),
      tail_(std::move(other.tail_)) {}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    options_.killGrace = std::min(options_.killGrace, std::chrono::milliseconds(2000));
    terminate();
  }
}

void Subprocess::pump(CommandResult& result) {
  LineSplitter outLines, errLines;
  auto emit = [&](std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (options_.onLine) options_.onLine(line);
    if (options_.tailLines > 0) {
      tail_.emplace_back(line);
      if (tail_.size() > options_.tailLines) tail_.pop_front();
    }
  };
  size_t inputOffset = 0;
  const auto deadline =
      options_.timeout.count() > 0 ? Clock::now() + options_.timeout : Clock::time_point::max();
  char buf[65536];
  // A stop request or the deadline ends the wait, whatever the output does.
  auto ended = [&] {
    if (options_.stop.stop_requested()) return result.stopped = true;
    if (Clock::now() >= deadline) return result.timedOut = true;
    return false;
  };
  // Output that goes elsewhere (stdoutFd, stderrFd): only the stop, the deadline and the exit
  // to watch. WNOWAIT leaves the child for reap().
  while (!stdoutFd_ && !stderrFd_) {
    if (ended()) return;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  while (stdoutFd_ || stderrFd_) {
    if (ended()) return;
    pollfd fds[3];
    nfds_t nfds = 0;
    auto add = [&](const UniqueFd& fd, short events) {
      if (fd) fds[nfds++] = pollfd{fd.get(), events, 0};
    };
    add(stdoutFd_, POLLIN);
    add(stderrFd_, POLLIN);
    add(stdinFd_, POLLOUT);
    int rc = ::poll(fds, nfds, 100);
    if (rc < 0 && errno != EINTR) throwErrno("poll on output of " + options_.argv[0]);
    for (nfds_t i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      if (stdinFd_ && fds[i].fd == stdinFd_.get()) {
        ssize_t n = ::write(stdinFd_.get(), options_.input.data() + inputOffset,
                            options_.input.size() - inputOffset);
        if (n > 0) inputOffset += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || inputOffset == options_.input.size())
          stdinFd_.reset();
        continue;
      }
      const bool isOut = stdoutFd_ && fds[i].fd == stdoutFd_.get();
      UniqueFd& fd = isOut ? stdoutFd_ : stderrFd_;
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        std::string_view data(buf, static_cast<size_t>(n));
        if (isOut && options_.captureStdout)
          result.stdoutText.append(data);
        else
          (isOut ? outLines : errLines).feed(data, emit);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        (isOut ? outLines : errLines).flush(emit);
        fd.reset();
      }
    }
  }
}

void Subprocess::reap(CommandResult& result) {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throwErrno("waitpid " + std::to_string(pid_));
  }
  pid_ = -1;
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.tail.assign(tail_.begin(), tail_.end());
}

CommandResult Subprocess::wait() {
  if (pid_ <= 0) throw std::logic_error("Subprocess::wait on a reaped process");
  CommandResult result;
  pump(result);
  if (result.timedOut || result.stopped) {
    terminate();
    result.exitCode = 128 + SIGTERM;
    result.tail.assign(tail_.begin(), tail_.end());
    return result;
  }
  reap(result);
  return result;
}

void Subprocess::terminate() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);
  const auto deadline = Clock::now() + options_.killGrace;
  int status = 0;
  while (Clock::now() < deadline) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      // The leader is gone; make sure nothing it started in its group lingers.
      ::kill(-pid_, SIGKILL);
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid_, SIGKILL);
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::optional<int> Subprocess::poll() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r != pid_) return std::nullopt;
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

CommandResult runCommand(SubprocessOptions options) {
  return Subprocess(std::move(options)).wait();
}

std::string checkCommand(SubprocessOptions options) {
  std::string command = joinCommand(options.argv);
  CommandResult result = runCommand(std::move(options));
  if (result.exitCode != 0 || result.timedOut || result.stopped)
    throw CommandError(std::move(command), std::move(result));
  return std::move(result.stdoutText);
}

std::string checkCommand(std::vector<std::string> argv) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.captureStdout = true;
  return checkCommand(std::move(o));
}

}  // namespace imgpipe
