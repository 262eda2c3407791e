#pragma once

// The only way out of a `network: proxy` sandbox. Commands in the image get a network namespace
// of their own that holds nothing but loopback; in it, 127.0.0.1:3128 (and :3129 for a separate
// https proxy) leads to the build agent's proxy, and no other address leads anywhere. The
// listening sockets live in that namespace while this process connects onward from the host's:
// a socket keeps the namespace it was made in, so no veth, route or firewall rule is needed, and
// nothing is left on the host when the build ends (the namespace is named by a bind mount in the
// build child's private mount namespace).

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent-build/config/build_proxy.h"
#include "agent-build/sandbox/network_namespace.h"
#include "common/unique_fd.h"

namespace imgpipe::build {

// Resource type: the namespace, its listening sockets and the threads that forward them.
class ProxyGate {
 public:
  // Connections forwarded at once; more wait in the listen queue.
  static constexpr std::size_t kMaxConnections = 64;
  static constexpr std::uint16_t kHttpPort = 3128;
  static constexpr std::uint16_t kHttpsPort = 3129;

  // `nsFile`: where the namespace is bind-mounted (created; must be in this process's private
  // mount namespace). Throws Error (with errno) when the namespace cannot be made.
  ProxyGate(const std::filesystem::path& nsFile, const BuildProxy& upstream);
  ~ProxyGate();
  ProxyGate(const ProxyGate&) = delete;
  ProxyGate& operator=(const ProxyGate&) = delete;

  // The namespace, for `sandbox-exec --netns`.
  const std::filesystem::path& netnsFile() const { return ns_->file(); }
  // The proxy as commands inside see it: build.proxy with the gate's addresses.
  const BuildProxy& insideProxy() const { return inside_; }

 private:
  struct Listener {
    UniqueFd socket;
    ProxyEndpoint upstream;
  };
  // One forwarded connection: the command's end and the proxy's, pumped by its own thread.
  struct Pump {
    UniqueFd client;
    UniqueFd upstream;
    std::atomic<bool> done{false};
    std::thread thread;
  };
  void acceptLoop();
  void pump(Pump& p, const ProxyEndpoint& upstream);
  void reapFinished();

  std::unique_ptr<NetworkNamespace> ns_;
  BuildProxy inside_;
  std::vector<Listener> listeners_;
  UniqueFd wake_;  // eventfd: the destructor's stop signal
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::list<Pump> pumps_;
  std::thread acceptor_;
};

}  // namespace imgpipe::build
