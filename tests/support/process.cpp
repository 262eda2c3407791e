#include "tests/support/process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"

namespace imgpipe::test {

Daemon::Daemon(std::vector<std::string> argv, std::filesystem::path log,
               std::map<std::string, std::string> env)
    : log_(std::move(log)) {
  // A program that is not there is an error now, not a silent exit 127 of the shell below that
  // leaves the caller waiting for a daemon that never comes.
  if (argv.empty()) throw Error("Daemon: no command");
  if (argv[0].find('/') != std::string::npos && ::access(argv[0].c_str(), X_OK) != 0)
    throw Error("cannot start " + argv[0] +
                ": not an executable file (built? IMGPIPE_BUILD_DIR=" + buildDir().string() + ")");
  SubprocessOptions o;
  // exec through the shell only to redirect: the pid we hold is the daemon's own.
  o.argv = {"sh", "-c", "exec " + joinCommand(argv) + " >>" + shellQuote(log_.string()) + " 2>&1"};
  o.env = std::move(env);
  o.killGrace = std::chrono::milliseconds(3000);
  process_ = std::make_unique<Subprocess>(std::move(o));
}

Daemon::~Daemon() = default;

bool Daemon::running() {
  if (!process_ || process_->pid() <= 0) return false;
  if (auto code = process_->poll()) {
    exitCode_ = *code;
    return false;
  }
  return true;
}

void Daemon::signal(int sig) {
  if (process_ && process_->pid() > 0) ::kill(process_->pid(), sig);
}

void Daemon::kill(int sig) {
  if (!process_) return;
  signal(sig);
  exitCode_ = process_->wait().exitCode;
  process_.reset();
}

bool Daemon::waitForLog(const std::string& text, std::chrono::milliseconds timeout) const {
  return waitUntil([&] { return log().find(text) != std::string::npos; }, timeout);
}

int Daemon::stop() {
  if (!process_) return exitCode_;
  signal(SIGTERM);
  int code = waitExit(std::chrono::seconds(15));
  if (code == -1) kill9();
  return exitCode_;
}

int Daemon::waitExit(std::chrono::milliseconds timeout) {
  if (!process_) return exitCode_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) {
      process_.reset();
      return exitCode_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

std::string Daemon::log() const {
  try {
    return readFile(log_);
  } catch (const std::exception&) {
    return "";
  }
}

CommandOutput run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir dir;
  auto errFile = dir.path() / "stderr";
  SubprocessOptions o;
  o.argv = {"sh", "-c", "exec " + joinCommand(argv) + " 2>" + shellQuote(errFile.string())};
  o.captureStdout = true;
  o.timeout = timeout;
  auto r = runCommand(std::move(o));
  CommandOutput out{r.exitCode, r.stdoutText, ""};
  try {
    out.err = readFile(errFile);
  } catch (const std::exception&) {
  }
  return out;
}

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

int freePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

namespace {

// The build tree this program was built in: the nearest directory above the executable that
// holds a CMakeCache.txt, so that a test or benchmark run by hand from any directory finds the
// binaries next to it.
std::filesystem::path buildTreeOfThisProgram() {
  std::error_code ec;
  auto dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  for (; !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
    if (std::filesystem::exists(dir / "CMakeCache.txt")) return dir;
  throw Error(
      "cannot find the build tree above /proc/self/exe (no CMakeCache.txt); set "
      "IMGPIPE_BUILD_DIR");
}

}  // namespace

std::filesystem::path buildDir() {
  const char* d = std::getenv("IMGPIPE_BUILD_DIR");
  return d ? std::filesystem::path(d) : buildTreeOfThisProgram();
}

std::filesystem::path sourceDir() {
  if (const char* d = std::getenv("IMGPIPE_SOURCE_DIR")) return d;
  // CMAKE_HOME_DIRECTORY:INTERNAL=/path/to/checkout
  const auto cache = readFile(buildDir() / "CMakeCache.txt");
  const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
  const auto at = cache.find(key);
  if (at == std::string::npos) throw Error("no CMAKE_HOME_DIRECTORY in the build tree's cache");
  const auto end = cache.find('\n', at);
  return cache.substr(at + key.size(), end - at - key.size());
}

}  // namespace imgpipe::test
