#include "agent-build/sandbox/slirp_gate.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/unique_fd.h"

namespace imgpipe::build {

namespace fs = std::filesystem;

SlirpGate::SlirpGate(const fs::path& nsFile, const fs::path& logFile) {
  if (::access(kSlirp4netns, X_OK) != 0)
    throw Error(std::string("slirp4netns (") + kSlirp4netns +
                ") is not installed; commands with network: host reach the network through it. "
                "Install the Debian package slirp4netns (scripts/install-deps.sh does)");
  ns_ = std::make_unique<NetworkNamespace>(nsFile);
  UniqueFd log(::open(logFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log) throwErrno("slirp4netns: creating " + logFile.string());
  SubprocessOptions o;
  o.argv = {kSlirp4netns, "--configure",
            // The largest MTU it takes: fewer, larger segments through the user-mode stack.
            "--mtu=65520", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
            "--netns-type=path", ns_->file().string(), "tap0"};
  o.stdoutFd = log.get();
  o.stderrFd = log.get();
  slirp_ = std::make_unique<Subprocess>(std::move(o));
  // slirp4netns says "received tapfd" once the interface inside is configured.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::string said;
    try {
      said = readFile(logFile);
    } catch (const Error&) {
    }
    if (said.find("received tapfd") != std::string::npos) return;
    if (slirp_->poll() || std::chrono::steady_clock::now() > deadline) {
      slirp_.reset();
      throw Error("slirp4netns did not bring up the sandbox's network: " + said);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

SlirpGate::~SlirpGate() {
  if (slirp_) slirp_->terminate();
  slirp_.reset();
  ns_.reset();
}

}  // namespace imgpipe::build
