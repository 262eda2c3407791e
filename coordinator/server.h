#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "common/net/authorized_keys.h"
#include "common/net/curve_keys.h"
#include "common/net/reactor.h"
#include "common/net/zap_handler.h"
#include "coordinator/config.h"
#include "coordinator/engine.h"
#include "coordinator/store.h"

namespace imgpipe::coord {

struct ServerCounters {
  std::uint64_t framesReceived = 0;
  std::uint64_t framesDropped = 0;  // undecodable, oversized, multi-part, or without identity
};

// The coordinator's socket layer: one ROUTER (CurveZMQ server) whose ZAP handler admits only the
// keys in authorized_keys, feeding decoded envelopes to the Engine on the reactor thread.
class Server : private Outbound {
 public:
  Server(const CoordinatorConfig& config, const net::CurveKeyPair& keys,
         net::AuthorizedKeysFile& authorized, Store& store, EngineOptions engineOptions,
         zmq::context_t& context, net::Reactor& reactor);
  ~Server() override;

  const std::string& boundEndpoint() const { return endpoint_; }
  const ServerCounters& counters() const { return counters_; }
  const Engine& engine() const { return engine_; }
  Engine& engine() { return engine_; }
  std::uint64_t zapRefused() const { return zap_.refused(); }

 private:
  bool send(const std::string& routingId, zmq::message_t frame) override;
  void onReadable();
  void dropped(const std::string& why);

  const CoordinatorConfig& config_;
  net::Reactor& reactor_;
  net::ZapHandler zap_;
  zmq::socket_t socket_;
  Engine engine_;
  std::string endpoint_;
  ServerCounters counters_;
  net::Reactor::TimerId tick_ = 0;
};

}  // namespace imgpipe::coord
