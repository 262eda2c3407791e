#include "transfer/transfer_wire.h"

#include <capnp/serialize.h>

#include "protocol/ids.h"

namespace imgpipe::transfer::wire {

Message::Message() : root(builder.initRoot<proto::TransferMessage>()) {
  root.setMajor(proto::TRANSFER_MAJOR);
  root.setMinor(proto::TRANSFER_MINOR);
}

std::string Message::bytes() {
  auto words = capnp::messageToFlatArray(builder);
  auto b = words.asBytes();
  return std::string(reinterpret_cast<const char*>(b.begin()), b.size());
}

std::string versionMismatch(std::uint16_t peerMajor, std::uint16_t peerMinor) {
  return "transfer protocol version mismatch: peer speaks " + std::to_string(peerMajor) + "." +
         std::to_string(peerMinor) + ", this side speaks " + std::to_string(proto::TRANSFER_MAJOR) +
         "." + std::to_string(proto::TRANSFER_MINOR) + "; upgrade the older side";
}

namespace {

using Body = proto::TransferMessage::Body;
using ids::Kind;

// Checks fields in order and remembers the first that is wrong.
class IdCheck {
 public:
  IdCheck& field(std::string_view name, Kind kind, capnp::Text::Reader value) {
    if (!problem_)
      problem_ = ids::problem(name, kind, std::string_view(value.cStr(), value.size()));
    return *this;
  }
  // Empty allowed: an `unavailable` that is about no artifact (a version mismatch).
  IdCheck& optional(std::string_view name, Kind kind, capnp::Text::Reader value) {
    return value.size() == 0 ? *this : field(name, kind, value);
  }
  std::optional<std::string> result() { return std::move(problem_); }

 private:
  std::optional<std::string> problem_;
};

}  // namespace

std::optional<std::string> invalidId(Body::Reader body) {
  IdCheck c;
  switch (body.which()) {
    case Body::GET_MANIFEST:
      c.field("getManifest.artifactId", Kind::artifactId, body.getGetManifest().getArtifactId());
      break;
    case Body::GET_CHUNKS:
      c.field("getChunks.artifactId", Kind::artifactId, body.getGetChunks().getArtifactId());
      break;
    case Body::OPEN_DELTA:
      c.field("openDelta.targetId", Kind::imageId, body.getOpenDelta().getTargetId())
          .field("openDelta.basisId", Kind::imageId, body.getOpenDelta().getBasisId());
      break;
    case Body::SIGNATURE_PART:
      c.field("signaturePart.targetId", Kind::imageId, body.getSignaturePart().getTargetId())
          .field("signaturePart.basisId", Kind::imageId, body.getSignaturePart().getBasisId());
      break;
    case Body::MANIFEST:
      c.field("manifest.artifactId", Kind::artifactId, body.getManifest().getArtifactId());
      break;
    case Body::CHUNK:
      c.field("chunk.artifactId", Kind::artifactId, body.getChunk().getArtifactId());
      break;
    case Body::UNAVAILABLE:
      c.optional("unavailable.artifactId", Kind::artifactId, body.getUnavailable().getArtifactId());
      break;
    case Body::DELTA_REPLY: {
      auto r = body.getDeltaReply();
      c.field("deltaReply.targetId", Kind::imageId, r.getTargetId())
          .field("deltaReply.basisId", Kind::imageId, r.getBasisId());
      if (r.isReady())
        c.field("deltaReply.ready.artifactId", Kind::deltaId, r.getReady().getArtifactId());
      break;
    }
    case Body::PING:
    case Body::PONG:
      break;
  }
  return c.result();
}

std::variant<Decoded, Refused> decode(const void* data, size_t size) {
  proto::DecodeLimits limits;
  limits.maxFrameBytes = kMaxReplyFrame;  // a manifest reply of a very large image
  limits.traversalLimitWords = (128u << 20) / 8;
  auto result = proto::decodeAs<proto::TransferMessage>(data, size, limits);
  if (auto* why = std::get_if<std::string>(&result)) return Refused{Refused::Kind::malformed, *why};
  auto decoded = std::move(std::get<0>(result));
  auto root = decoded->root();
  if (root.getMajor() != proto::TRANSFER_MAJOR)
    return Refused{Refused::Kind::version, versionMismatch(root.getMajor(), root.getMinor())};
  try {
    if (auto why = invalidId(root.getBody())) return Refused{Refused::Kind::invalidId, *why};
  } catch (const kj::Exception& e) {
    // A pointer out of bounds inside a well-formed frame: capnp checks lazily, on access.
    return Refused{Refused::Kind::malformed, e.getDescription().cStr()};
  }
  return decoded;
}

}  // namespace imgpipe::transfer::wire
