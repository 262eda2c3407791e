#pragma once

#include <functional>
#include <string>
#include <zmq.hpp>

#include "common/net/reactor.h"

namespace imgpipe::net {

// Watches one socket's connection events so a client can say WHY it gets no answer: a CURVE
// handshake the server refused (our key is not authorized, or we hold the wrong server key)
// looks, without this, exactly like a server that is down. It also hands out the descriptor of
// every new TCP connection (ZeroMQ owns it; the only thing to do with it is to tune it, e.g.
// its congestion control, before the handshake's round trips are over).
class SocketMonitor {
 public:
  enum class Event { connected, disconnected, handshakeSucceeded, authFailed, protocolFailed };
  using Callback = std::function<void(Event, const std::string& endpoint)>;
  // A connection made (connect) or accepted (bind), with its descriptor.
  using ConnectionCallback = std::function<void(int fd)>;

  SocketMonitor(zmq::context_t& context, Reactor& reactor, zmq::socket_t& watched, Callback cb,
                ConnectionCallback onConnection = {});
  ~SocketMonitor();
  SocketMonitor(const SocketMonitor&) = delete;
  SocketMonitor& operator=(const SocketMonitor&) = delete;

 private:
  void onEvent();

  Reactor& reactor_;
  zmq::socket_t& watched_;
  zmq::socket_t pair_;
  Callback callback_;
  ConnectionCallback onConnection_;
};

}  // namespace imgpipe::net
