#include "coordinator/server.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "protocol/codec.h"

namespace imgpipe::coord {
namespace {

// Definition checks' results come back to the engine on the reactor thread.
EngineOptions withPost(EngineOptions options, net::Reactor& reactor) {
  options.post = [&reactor](std::function<void()> fn) { reactor.post(std::move(fn)); };
  return options;
}

}  // namespace

Server::Server(const CoordinatorConfig& config, const net::CurveKeyPair& keys,
               net::AuthorizedKeysFile& authorized, Store& store, EngineOptions engineOptions,
               zmq::context_t& context, net::Reactor& reactor)
    : config_(config),
      reactor_(reactor),
      zap_(context, reactor,
           [&authorized](const std::string& key,
                         const std::string&) -> std::optional<net::PeerIdentity> {
             if (const auto* k = authorized.current().findByKey(key))
               return net::PeerIdentity{k->name, std::string(toString(k->role))};
             return std::nullopt;
           }),
      socket_(context, zmq::socket_type::router),
      engine_(store, authorized, withPost(std::move(engineOptions), reactor), *this) {
  net::configureCurveServer(socket_, keys.secretKey);
  // Sending to a peer that is gone fails instead of vanishing silently, so watchers of a CLI that
  // quit are dropped.
  socket_.set(zmq::sockopt::router_mandatory, 1);
  // A frame far beyond any legitimate message closes that connection before it is buffered.
  socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config_.maxFrame * 4));
  socket_.set(zmq::sockopt::sndhwm, 100'000);
  socket_.set(zmq::sockopt::rcvhwm, 100'000);
  socket_.bind(config_.listen);
  endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  reactor_.addSocket(socket_, [this] { onReadable(); });
  tick_ = reactor_.every(std::max(std::chrono::milliseconds(50), config_.heartbeat.interval / 4),
                         [this] { engine_.onTick(); });
  spdlog::info("coordinator listening on {}", endpoint_);
}

Server::~Server() {
  reactor_.cancel(tick_);
  reactor_.removeSocket(socket_);
}

bool Server::send(const std::string& routingId, zmq::message_t frame) {
  try {
    if (!socket_.send(zmq::buffer(routingId), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;
    return socket_.send(frame, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;
    throw;
  }
}

void Server::dropped(const std::string& why) {
  ++counters_.framesDropped;
  // The first few in full, then a sample: a flood of garbage must not flood the log too.
  if (counters_.framesDropped <= 10 || counters_.framesDropped % 1000 == 0)
    spdlog::warn("dropped {} [{} dropped so far]", why, counters_.framesDropped);
}

void Server::onReadable() {
  // Bounded batch so a flood from one peer cannot starve timers.
  for (int batch = 0; batch < 1000; ++batch) {
    std::vector<zmq::message_t> parts;
    for (;;) {
      zmq::message_t part;
      if (!socket_.recv(part, zmq::recv_flags::dontwait)) break;
      bool more = part.more();
      parts.push_back(std::move(part));
      if (!more) break;
    }
    if (parts.empty()) return;
    ++counters_.framesReceived;
    if (parts.size() != 2) {
      dropped("a message of " + std::to_string(parts.size()) +
              " frames (expected routing id + one frame)");
      continue;
    }
    net::PeerIdentity who;
    try {
      who.name = parts[1].gets("User-Id");
      who.role = parts[1].gets("X-Role");
      who.key = parts[1].gets("X-Key");
    } catch (const zmq::error_t&) {
      dropped("a frame without an authenticated identity");
      continue;
    }
    auto decoded = proto::decodeEnvelope(parts[1], proto::DecodeLimits{config_.maxFrame});
    if (auto* err = std::get_if<std::string>(&decoded)) {
      dropped("a frame from " + who.name + " (" + who.role + "): " + *err);
      continue;
    }
    auto& msg = std::get<0>(decoded);
    try {
      engine_.onMessage(parts[0].to_string(), who, msg->root());
    } catch (const kj::Exception& e) {
      dropped("a message from " + who.name + ": " + e.getDescription().cStr());
    }
  }
}

}  // namespace imgpipe::coord
