#include "transfer/transfer_wire.h"

#include <capnp/serialize.h>

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

std::variant<Decoded, std::string> decode(const void* data, size_t size) {
  proto::DecodeLimits limits;
  limits.maxFrameBytes = 64 << 20;  // a manifest reply of a very large image
  limits.traversalLimitWords = (128u << 20) / 8;
  auto result = proto::decodeAs<proto::TransferMessage>(data, size, limits);
  if (auto* why = std::get_if<std::string>(&result)) return *why;
  auto decoded = std::move(std::get<0>(result));
  auto root = decoded->root();
  if (root.getMajor() != proto::TRANSFER_MAJOR)
    return versionMismatch(root.getMajor(), root.getMinor());
  return decoded;
}

}  // namespace imgpipe::transfer::wire
