#include "coordinator/cli/client.h"

#include "common/net/zap_handler.h"

namespace imgpipe::cli {

OperatorClient::OperatorClient(const std::string& endpoint, const std::string& coordinatorKey,
                               const net::CurveKeyPair& keys, std::chrono::milliseconds timeout)
    : endpoint_(endpoint),
      publicKey_(keys.publicKey),
      timeout_(timeout),
      socket_(context_, zmq::socket_type::dealer) {
  net::configureCurveClient(socket_, keys.publicKey, keys.secretKey, coordinatorKey);
  monitor_ = std::make_unique<net::SocketMonitor>(
      context_, reactor_, socket_, [this](net::SocketMonitor::Event e, const std::string&) {
        if (e == net::SocketMonitor::Event::authFailed)
          authError_ = "the coordinator at " + endpoint_ + " refused this key (" + publicKey_ +
                       "): add it to its authorized_keys with role operator";
        else if (e == net::SocketMonitor::Event::protocolFailed)
          authError_ = "CURVE handshake with " + endpoint_ +
                       " failed: is the coordinator public key in the CLI config the right one?";
      });
  try {
    socket_.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw CliError(kUsage, "invalid coordinator endpoint '" + endpoint + "': " + e.what());
  }
  reactor_.addSocket(socket_, [] {});
}

OperatorClient::~OperatorClient() {
  reactor_.removeSocket(socket_);
  monitor_.reset();
}

std::unique_ptr<proto::Decoded<proto::Envelope>> OperatorClient::receive(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    zmq::message_t frame;
    if (socket_.recv(frame, zmq::recv_flags::dontwait)) {
      auto decoded = proto::decodeEnvelope(frame, proto::DecodeLimits{64 << 20});
      if (auto* err = std::get_if<std::string>(&decoded))
        throw CliError(kUnreachable, "unreadable reply from the coordinator: " + *err);
      auto& msg = std::get<0>(decoded);
      auto body = msg->root().getBody();
      if (body.which() == proto::Envelope::Body::REFUSED)
        throw CliError(kNotAuthorized,
                       "coordinator refused: " + std::string(body.getRefused().getReason()));
      return std::move(msg);
    }
    if (authError_) throw CliError(kNotAuthorized, *authError_);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return nullptr;
    reactor_.runOnce(std::min(left, std::chrono::milliseconds(100)));
  }
}

std::unique_ptr<proto::Decoded<proto::Envelope>> OperatorClient::request(const Fill& fill) {
  proto::EnvelopeBuilder b;
  auto r = b.body().initRequest();
  const auto id = nextRequestId_++;
  r.setRequestId(id);
  fill(r);
  auto frame = b.frame();
  socket_.send(frame, zmq::send_flags::none);
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto msg = left.count() > 0 ? receive(left) : nullptr;
    if (!msg)
      throw CliError(kUnreachable,
                     "no answer from the coordinator at " + endpoint_ + " within " +
                         std::to_string(timeout_.count() / 1000) +
                         " s: is it running and reachable, and is this CLI's key listed in its "
                         "authorized_keys as operator?");
    auto body = msg->root().getBody();
    if (body.which() != proto::Envelope::Body::REPLY || body.getReply().getRequestId() != id)
      continue;
    auto kind = body.getReply().getKind();
    if (kind.which() == proto::OperatorReply::Kind::ERROR) {
      auto e = kind.getError();
      ExitCode code = kRejected;
      switch (e.getCode()) {
        case proto::ErrorCode::BAD_REQUEST:
          code = kUsage;
          break;
        case proto::ErrorCode::FORBIDDEN:
          code = kNotAuthorized;
          break;
        case proto::ErrorCode::INTERNAL:
          code = kUnreachable;
          break;
        default:
          code = kRejected;
      }
      throw CliError(code, e.getMessage());
    }
    return msg;
  }
}

std::unique_ptr<proto::Decoded<proto::Envelope>> OperatorClient::next(
    std::chrono::milliseconds timeout) {
  return receive(timeout);
}

}  // namespace imgpipe::cli
