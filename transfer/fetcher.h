#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <zmq.hpp>

#include "common/net/curve_keys.h"
#include "common/net/tcp_options.h"
#include "transfer/connection_options.h"
#include "transfer/fetch_session.h"

namespace imgpipe::transfer {

// The upstream end of one hop as seen from the receiver.
struct Upstream {
  std::string endpoint;   // tcp://host:port of its artifact server
  std::string serverKey;  // its CURVE public key, pinned: no other server is accepted
};

// The socket layer of a fetch: one DEALER (CURVE client) to the upstream's artifact server,
// living on the calling (task) thread. It drives conversations (fetch_session.h): feeds them
// connection events from a socket monitor, decoded messages and ticks, and sends what they
// produce. When a conversation asks for a new connection the socket is replaced, which also
// drops whatever the old connection still had queued. Resource type.
class Fetcher {
 public:
  // `log`: where connection events go (a job's logger, so they carry its id); null: default.
  Fetcher(zmq::context_t& context, Upstream upstream, net::CurveKeyPair keys,
          ConnectionOptions options, std::shared_ptr<spdlog::logger> log = nullptr);
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Runs `conversation` until it finishes or fails; false when `stop` was requested first.
  // `everySecond` is called about once a second (progress reports).
  bool run(Conversation& conversation, std::stop_token stop,
           const std::function<void()>& everySecond = {});

  std::uint32_t reconnects() const { return reconnects_; }
  // The congestion control of the last connection, as the kernel reports it ("" before one).
  const std::string& congestion() const { return congestion_; }
  std::uint64_t undecodable() const { return undecodable_; }
  const Upstream& upstream() const { return upstream_; }

 private:
  void open();
  void close();
  void drainMonitor(Conversation& c);
  void drainSocket(Conversation& c);
  void flush(Conversation& c);

  zmq::context_t& context_;
  Upstream upstream_;
  net::CurveKeyPair keys_;
  ConnectionOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<zmq::socket_t> socket_;
  std::optional<zmq::socket_t> monitor_;
  bool connected_ = false;
  bool everConnected_ = false;
  std::uint32_t reconnects_ = 0;
  std::uint64_t undecodable_ = 0;
  net::CongestionChoice congestionChoice_;
  std::string congestion_;  // what the kernel runs on the last connection
  int fd_ = -1;             // the connection's descriptor (ZeroMQ's), while connected
};

}  // namespace imgpipe::transfer
