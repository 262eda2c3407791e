#pragma once

#include <functional>
#include <string>
#include <zmq.hpp>

#include "common/net/reactor.h"

namespace imgpipe::net {

// Watches one socket's connection events so a client can say WHY it gets no answer: a CURVE
// handshake the server refused (our key is not authorized, or we hold the wrong server key)
// looks, without this, exactly like a server that is down.
class SocketMonitor {
 public:
  enum class Event { connected, disconnected, handshakeSucceeded, authFailed, protocolFailed };
  using Callback = std::function<void(Event, const std::string& endpoint)>;

  SocketMonitor(zmq::context_t& context, Reactor& reactor, zmq::socket_t& watched, Callback cb);
  ~SocketMonitor();
  SocketMonitor(const SocketMonitor&) = delete;
  SocketMonitor& operator=(const SocketMonitor&) = delete;

 private:
  void onEvent();

  Reactor& reactor_;
  zmq::socket_t& watched_;
  zmq::socket_t pair_;
  Callback callback_;
};

}  // namespace imgpipe::net
