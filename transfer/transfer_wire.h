#pragma once

#include <capnp/message.h>

#include <memory>
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

// Never throws. A frame that is too large, malformed, or from a peer of another major version
// yields the reason instead (naming both versions).
std::variant<Decoded, std::string> decode(const void* data, size_t size);

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
