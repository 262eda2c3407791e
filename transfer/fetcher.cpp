#include "transfer/fetcher.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <atomic>
#include <cstring>

#include "common/net/tcp_options.h"
#include "common/net/zap_handler.h"

namespace imgpipe::transfer {

Fetcher::Fetcher(zmq::context_t& context, Upstream upstream, net::CurveKeyPair keys,
                 ConnectionOptions options, std::shared_ptr<spdlog::logger> log)
    : context_(context),
      upstream_(std::move(upstream)),
      keys_(std::move(keys)),
      options_(options),
      log_(log ? std::move(log) : spdlog::default_logger()),
      congestionChoice_(options_.congestion) {
  open();
}

Fetcher::~Fetcher() {
  close();
}

void Fetcher::open() {
  static std::atomic<unsigned> counter{0};
  socket_.emplace(context_, zmq::socket_type::dealer);
  auto& s = *socket_;
  net::configureCurveClient(s, keys_.publicKey, keys_.secretKey, upstream_.serverKey);
  net::configureHeartbeats(s, options_.heartbeatInterval, options_.heartbeatTimeout);
  s.set(zmq::sockopt::reconnect_ivl, static_cast<int>(options_.reconnectInitial.count()));
  s.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(options_.reconnectMax.count()));
  // A SYN lost in a black hole is retransmitted after 1, 3, 7 s...: give up on it and send a
  // fresh one, so a link that comes back is used within about a second (a connect needs one
  // round trip, under a second on the longest paths served).
  s.set(zmq::sockopt::connect_timeout,
        static_cast<int>(std::max(options_.reconnectMax, std::chrono::milliseconds(1000)).count()));
  // Queue nothing for a connection that is not up: requests are re-issued on reconnection, and
  // stale ones must not reach the sender later (they would cost a second copy on the wire).
  s.set(zmq::sockopt::immediate, 1);
  // Chunks arrive only as requested, within the credit window: that bounds this queue.
  s.set(zmq::sockopt::rcvhwm, 0);
  s.set(zmq::sockopt::rcvbuf, 4 << 20);
  // A frame larger than any chunk or manifest is refused before it is read into memory (the
  // connection is dropped): an upstream cannot make this process allocate what it likes.
  s.set(zmq::sockopt::maxmsgsize, wire::kMaxReplyFrame);
  const std::string endpoint = "inproc://imgpipe-fetch-monitor-" + std::to_string(counter++);
  if (zmq_socket_monitor(s.handle(), endpoint.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
    throw zmq::error_t();
  monitor_.emplace(context_, zmq::socket_type::pair);
  monitor_->set(zmq::sockopt::linger, 0);
  monitor_->connect(endpoint);
  s.connect(upstream_.endpoint);
  connected_ = false;
}

void Fetcher::close() {
  if (socket_) zmq_socket_monitor(socket_->handle(), nullptr, 0);
  monitor_.reset();
  socket_.reset();
  connected_ = false;
  fd_ = -1;
}

void Fetcher::drainMonitor(Conversation& c) {
  for (;;) {
    zmq::message_t head, address;
    if (!monitor_->recv(head, zmq::recv_flags::dontwait)) return;
    if (head.more()) (void)monitor_->recv(address, zmq::recv_flags::none);
    if (head.size() < 6) continue;
    std::uint16_t id;
    std::memcpy(&id, head.data(), sizeof id);
    const auto now = Clock::now();
    switch (id) {
      case ZMQ_EVENT_CONNECTED: {
        // The value is the new connection's descriptor (ZeroMQ's): its requests and uploads
        // flow from here, the chunks from the server, which sets its own end.
        std::uint32_t fd;
        std::memcpy(&fd, static_cast<const char*>(head.data()) + 2, sizeof fd);
        if (auto why = congestionChoice_.apply(static_cast<int>(fd)); !why.empty())
          log_->warn("{}; the connection to {} uses the host's default", why, upstream_.endpoint);
        congestion_ = net::congestionControlOf(static_cast<int>(fd));
        fd_ = static_cast<int>(fd);
        break;
      }
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        if (everConnected_) log_->info("reconnected to {}", upstream_.endpoint);
        everConnected_ = true;
        connected_ = true;
        c.connected(now);
        break;
      case ZMQ_EVENT_DISCONNECTED:
        fd_ = -1;
        if (connected_) {
          ++reconnects_;
          log_->warn("connection to {} lost; reconnecting", upstream_.endpoint);
        }
        connected_ = false;
        c.disconnected(now);
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        log_->warn("{} refused our key (no grant for it yet?)", upstream_.endpoint);
        c.authFailed(now);
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        log_->warn("CURVE handshake with {} failed (wrong server key?)", upstream_.endpoint);
        c.authFailed(now);
        break;
      default:
        break;
    }
  }
}

void Fetcher::drainSocket(Conversation& c) {
  for (int budget = 0; budget < 256; ++budget) {
    zmq::message_t header;
    if (!socket_->recv(header, zmq::recv_flags::dontwait)) return;
    zmq::message_t payload;
    bool hasPayload = false;
    if (header.more()) {
      (void)socket_->recv(payload, zmq::recv_flags::none);
      hasPayload = true;
      // Anything beyond one payload frame is not ours to interpret.
      while (payload.more()) {
        zmq::message_t extra;
        (void)socket_->recv(extra, zmq::recv_flags::none);
      }
    }
    auto decoded = wire::decode(header.data(), header.size());
    if (auto* r = std::get_if<wire::Refused>(&decoded)) {
      ++undecodable_;
      log_->warn("dropped an undecodable message from {}: {}", upstream_.endpoint, r->reason);
      if (r->kind == wire::Refused::Kind::version) c.authFailed(Clock::now());
      // An upstream naming things outside their grammar is broken or hostile: nothing it sends
      // is acted on any more.
      if (r->kind == wire::Refused::Kind::invalidId)
        c.violation("upstream " + upstream_.endpoint + " sent an invalid identifier: " + r->reason);
      continue;
    }
    auto& d = std::get<0>(decoded);
    std::span<const std::byte> bytes;
    if (hasPayload) bytes = {static_cast<const std::byte*>(payload.data()), payload.size()};
    c.received(d->root(), bytes, Clock::now());
    flush(c);
  }
}

void Fetcher::flush(Conversation& c) {
  for (auto& f : c.takeOutgoing()) {
    // With `immediate` set, a send without a connection fails at once: the conversation
    // re-issues what matters when the connection is back.
    auto flags = zmq::send_flags::dontwait;
    if (f.hasPayload) {
      if (!socket_->send(zmq::buffer(f.header), flags | zmq::send_flags::sndmore)) continue;
      (void)socket_->send(zmq::buffer(f.payload), zmq::send_flags::none);
    } else {
      (void)socket_->send(zmq::buffer(f.header), flags);
    }
  }
}

bool Fetcher::run(Conversation& c, std::stop_token stop, const std::function<void()>& everySecond) {
  if (connected_) c.connected(Clock::now());
  auto nextSecond = Clock::now() + std::chrono::seconds(1);
  auto nextPathRead = Clock::now();
  while (!c.finished() && !c.failed()) {
    if (stop.stop_requested()) return false;
    zmq::pollitem_t items[] = {{socket_->handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_->handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, std::chrono::milliseconds(20));
    if (items[1].revents & ZMQ_POLLIN) drainMonitor(c);
    if (items[0].revents & ZMQ_POLLIN) drainSocket(c);
    const auto now = Clock::now();
    // The kernel's view of the path, for the conversation's dead timer. The descriptor is
    // ZeroMQ's and may close under us; the event that says so clears it, and until then
    // reading TCP_INFO of a closed or reused descriptor costs one wrong estimate, never harm.
    if (fd_ >= 0 && now >= nextPathRead) {
      nextPathRead = now + std::chrono::milliseconds(500);
      if (auto timing = net::pathTimingOf(fd_)) c.pathTiming(*timing, now);
    }
    c.tick(now);
    if (c.takeReconnectRequest()) {
      log_->warn("opening a new connection to {} ({})", upstream_.endpoint,
                 connected_ ? "nothing heard for too long" : "after a refused handshake");
      ++reconnects_;
      close();
      open();
      c.takeOutgoing();  // requests for the old connection
      continue;
    }
    flush(c);
    if (everySecond && now >= nextSecond) {
      nextSecond = now + std::chrono::seconds(1);
      everySecond();
    }
  }
  flush(c);
  return true;
}

}  // namespace imgpipe::transfer
