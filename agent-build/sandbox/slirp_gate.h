#pragma once

// The way out of a `network: host` sandbox: a network namespace of its own whose only interface
// leads to slirp4netns (Debian's `slirp4netns`, the user-mode network stack rootless Podman
// uses), which connects onward from the host's namespace as an ordinary process would. What it
// cannot reach, by construction: the host's loopback (`--disable-host-loopback`: 127.0.0.0/8 and
// 10.0.2.2 are refused), the host's abstract unix sockets (they belong to the host's network
// namespace), and any interface of the host. Chosen over a veth with NAT, which needs firewall
// rules on the host to keep the sandbox off the host's own addresses and leaves state behind when
// the agent dies, and over pasta, whose Debian 12 version is an early snapshot; slirp4netns runs
// with its own seccomp filter and mount namespace (`--enable-sandbox --enable-seccomp`).

#include <filesystem>
#include <memory>

#include "agent-build/sandbox/network_namespace.h"
#include "common/subprocess.h"

namespace imgpipe::build {

inline constexpr const char* kSlirp4netns = "/usr/bin/slirp4netns";

// Resource type: the namespace and the slirp4netns process that serves it.
class SlirpGate {
 public:
  // `nsFile` and `logFile`: created; in this process's private mount namespace. Throws Error
  // naming the package when slirp4netns is missing, and its output when it does not come up
  // within 10 s.
  SlirpGate(const std::filesystem::path& nsFile, const std::filesystem::path& logFile);
  ~SlirpGate();
  SlirpGate(const SlirpGate&) = delete;
  SlirpGate& operator=(const SlirpGate&) = delete;

  const std::filesystem::path& netnsFile() const { return ns_->file(); }

 private:
  std::unique_ptr<NetworkNamespace> ns_;
  std::unique_ptr<Subprocess> slirp_;
};

}  // namespace imgpipe::build
