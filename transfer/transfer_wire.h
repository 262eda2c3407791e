#pragma once

#include <capnp/message.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/codec.h"
#include "protocol/schema/transfer.capnp.h"
#include "transfer/manifest.h"

namespace imgpipe::transfer::wire {

// A TransferMessage under construction, already stamped with our protocol version.
struct Message {
  capnp::MallocMessageBuilder builder;
  proto::TransferMessage::Builder root;
  Message();
  proto::TransferMessage::Body::Builder body() { return root.initBody(); }
  std::string bytes();
};

using Decoded = std::unique_ptr<proto::Decoded<proto::TransferMessage>>;

// Why a frame was not accepted.
struct Refused {
  enum class Kind {
    malformed,  // not a TransferMessage, or too large
    version,    // a peer of another major version
    invalidId,  // an identifier that does not follow its grammar (protocol/ids.h)
  };
  Kind kind = Kind::malformed;
  std::string reason;  // names the field and shows the (escaped) value
};

// Never throws. A frame that is too large, malformed, from a peer of another major version, or
// whose identifiers are not what their grammar admits (every artifact id, delta id with its basis
// and target, in every message kind) yields the reason instead: identifiers are data, and what
// gets past here may name a file.
std::variant<Decoded, Refused> decode(const void* data, size_t size);

// The first identifier of `body` that is not well-formed, as "<field>: '<value>' is not a ...".
std::optional<std::string> invalidId(proto::TransferMessage::Body::Reader body);

// The largest frame each end accepts (ZMQ_MAXMSGSIZE; a larger one drops the connection before
// it is read into memory). The server is sent requests and signature parts (1 MiB); a receiver is
// sent chunks (up to 16 MiB) and manifests, 32 bytes per chunk: 32 MiB holds a 1 TiB image at
// 1 MiB chunks (16 TiB at 16 MiB).
constexpr std::int64_t kMaxRequestFrame = 2 << 20;
constexpr std::int64_t kMaxReplyFrame = 33 << 20;

inline capnp::Data::Reader asData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
inline std::string toString(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
inline std::string toString(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

std::string versionMismatch(std::uint16_t peerMajor, std::uint16_t peerMinor);

}  // namespace imgpipe::transfer::wire

namespace imgpipe::transfer {
proto::DeltaFormat deltaFormatToProto(DeltaFormat format);
DeltaFormat deltaFormatFromProto(proto::DeltaFormat format);

}  // namespace imgpipe::transfer
