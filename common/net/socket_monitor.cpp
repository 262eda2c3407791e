#include "common/net/socket_monitor.h"

#include <zmq.h>

#include <atomic>
#include <cstring>

namespace imgpipe::net {

SocketMonitor::SocketMonitor(zmq::context_t& context, Reactor& reactor, zmq::socket_t& watched,
                             Callback cb, ConnectionCallback onConnection)
    : reactor_(reactor),
      watched_(watched),
      pair_(context, zmq::socket_type::pair),
      callback_(std::move(cb)),
      onConnection_(std::move(onConnection)) {
  static std::atomic<unsigned> counter{0};
  const std::string endpoint = "inproc://imgpipe-monitor-" + std::to_string(counter++);
  if (zmq_socket_monitor(watched_.handle(), endpoint.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
    throw zmq::error_t();
  pair_.set(zmq::sockopt::linger, 0);
  pair_.connect(endpoint);
  reactor_.addSocket(pair_, [this] { onEvent(); });
}

SocketMonitor::~SocketMonitor() {
  reactor_.removeSocket(pair_);
  zmq_socket_monitor(watched_.handle(), nullptr, 0);
}

void SocketMonitor::onEvent() {
  for (;;) {
    zmq::message_t head, address;
    if (!pair_.recv(head, zmq::recv_flags::dontwait)) return;
    if (head.more()) (void)pair_.recv(address, zmq::recv_flags::none);
    if (head.size() < 6) continue;
    std::uint16_t id;
    std::memcpy(&id, head.data(), sizeof id);
    std::uint32_t value;
    std::memcpy(&value, static_cast<const char*>(head.data()) + 2, sizeof value);
    if ((id == ZMQ_EVENT_CONNECTED || id == ZMQ_EVENT_ACCEPTED) && onConnection_)
      onConnection_(static_cast<int>(value));
    Event e;
    switch (id) {
      case ZMQ_EVENT_CONNECTED:
        e = Event::connected;
        break;
      case ZMQ_EVENT_DISCONNECTED:
        e = Event::disconnected;
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        e = Event::handshakeSucceeded;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        e = Event::authFailed;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        e = Event::protocolFailed;
        break;
      default:
        continue;
    }
    callback_(e, address.to_string());
  }
}

}  // namespace imgpipe::net
