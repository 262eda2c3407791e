#include "common/net/zap_handler.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <vector>

namespace imgpipe::net {
namespace {

// ZMTP metadata: name-length (1 byte), name, value-length (4 bytes, big endian), value.
void appendProperty(std::string& out, const std::string& name, const std::string& value) {
  out.push_back(static_cast<char>(name.size()));
  out += name;
  const auto n = static_cast<std::uint32_t>(value.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out += value;
}

}  // namespace

ZapHandler::ZapHandler(zmq::context_t& context, Reactor& reactor, Authorizer authorizer)
    : socket_(context, zmq::socket_type::rep),
      reactor_(reactor),
      authorizer_(std::move(authorizer)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  reactor_.addSocket(socket_, [this] { handleRequest(); });
}

ZapHandler::~ZapHandler() {
  reactor_.removeSocket(socket_);
}

void ZapHandler::handleRequest() {
  std::vector<zmq::message_t> frames;
  for (;;) {
    zmq::message_t part;
    if (!socket_.recv(part, zmq::recv_flags::dontwait)) break;
    bool more = part.more();
    frames.push_back(std::move(part));
    if (!more) break;
  }
  if (frames.empty()) return;
  // version, request id, domain, address, identity, mechanism, credentials...
  auto text = [&](size_t i) { return i < frames.size() ? frames[i].to_string() : std::string(); };
  const std::string requestId = text(1);
  std::string status = "400", statusText = "refused", userId, metadata;
  if (frames.size() >= 7 && text(0) == "1.0" && text(2) == kZapDomain && text(5) == "CURVE" &&
      frames[6].size() == 32) {
    char z85[41];
    zmq_z85_encode(z85, frames[6].data<uint8_t>(), 32);
    const std::string address = text(3);
    if (auto who = authorizer_(z85, address)) {
      status = "200";
      statusText = "OK";
      userId = who->name;
      appendProperty(metadata, "X-Role", who->role);
      // The key itself travels with every frame, so a handler can check each frame against the
      // allowlist as it is now, not as it was when the connection was made.
      appendProperty(metadata, "X-Key", z85);
      ++admitted_;
      spdlog::debug("zap: admitted {} ({}) from {}", who->name, who->role, address);
    } else {
      ++refused_;
      spdlog::warn("zap: refused a connection from {}: public key {} is not authorized", address,
                   z85);
    }
  } else {
    ++refused_;
    spdlog::warn(
        "zap: refused a malformed or non-CURVE authentication request (domain '{}', mechanism "
        "'{}')",
        text(2), text(5));
  }
  socket_.send(zmq::buffer(std::string("1.0")), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(requestId), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(status), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(statusText), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(userId), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(metadata), zmq::send_flags::none);
}

void configureCurveServer(zmq::socket_t& socket, const std::string& secretKey) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, secretKey);
  socket.set(zmq::sockopt::zap_domain, kZapDomain);
  socket.set(zmq::sockopt::linger, 0);
}

void configureCurveClient(zmq::socket_t& socket, const std::string& publicKey,
                          const std::string& secretKey, const std::string& serverPublicKey) {
  socket.set(zmq::sockopt::curve_serverkey, serverPublicKey);
  socket.set(zmq::sockopt::curve_publickey, publicKey);
  socket.set(zmq::sockopt::curve_secretkey, secretKey);
  socket.set(zmq::sockopt::linger, 0);
}

void configureHeartbeats(zmq::socket_t& socket, std::chrono::milliseconds interval,
                         std::chrono::milliseconds timeout) {
  socket.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(interval.count()));
  socket.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(timeout.count()));
  socket.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(timeout.count()));
}

}  // namespace imgpipe::net
