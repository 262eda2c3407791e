#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/net/reactor.h"

namespace imgpipe::net {

// Who a CURVE client turned out to be, as decided by the authorizer.
struct PeerIdentity {
  std::string name;
  std::string role;
  std::string key;  // Z85; the "X-Key" property of every frame it sends
};

// The ZAP handler (RFC 27) of one ZeroMQ context. Without it CURVE accepts ANY client key, so
// every daemon that binds a CURVE server socket must run one. The authorizer gets the client's
// public key (Z85) and address; a nullopt refuses the connection. An admitted peer's name becomes
// the ZMQ "User-Id", its role the "X-Role" and its key the "X-Key" property of every message it
// sends.
class ZapHandler {
 public:
  using Authorizer = std::function<std::optional<PeerIdentity>(const std::string& publicKey,
                                                               const std::string& address)>;

  ZapHandler(zmq::context_t& context, Reactor& reactor, Authorizer authorizer);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  std::uint64_t admitted() const { return admitted_; }
  std::uint64_t refused() const { return refused_; }

 private:
  void handleRequest();

  zmq::socket_t socket_;
  Reactor& reactor_;
  Authorizer authorizer_;
  std::uint64_t admitted_ = 0;
  std::uint64_t refused_ = 0;
};

// The ZAP domain every imgpipe server socket uses; ZMQ_ZAP_ENFORCE_DOMAIN is on in libzmq 4.3.
inline constexpr const char* kZapDomain = "imgpipe";

// Socket configuration shared by every imgpipe socket.
void configureCurveServer(zmq::socket_t& socket, const std::string& secretKey);
void configureCurveClient(zmq::socket_t& socket, const std::string& publicKey,
                          const std::string& secretKey, const std::string& serverPublicKey);
// ZMTP-level heartbeats drop a silent TCP connection (a link that is down) after `timeout`,
// instead of the kernel's ~15 minutes; the DEALER then reconnects by itself.
void configureHeartbeats(zmq::socket_t& socket, std::chrono::milliseconds interval,
                         std::chrono::milliseconds timeout);

}  // namespace imgpipe::net
