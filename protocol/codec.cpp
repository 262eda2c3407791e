#include "protocol/codec.h"

#include <capnp/dynamic.h>
#include <capnp/schema.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>

#include "protocol/schema/transfer.capnp.h"

namespace imgpipe::proto {

namespace {

void walk(capnp::DynamicValue::Reader value);

void walkStruct(capnp::DynamicStruct::Reader s) {
  for (auto field : s.getSchema().getNonUnionFields())
    walk(s.get(field));
  KJ_IF_MAYBE (active, s.which()) {
    walk(s.get(*active));
  }
}

// Reads every value the schema says is there, as the type the schema says it has. A pointer of
// the wrong kind (a struct where text belongs) passes Cap'n Proto's bounds checks but throws
// when the field is read; reading everything here, once, makes that happen at decode time.
void walk(capnp::DynamicValue::Reader value) {
  switch (value.getType()) {
    case capnp::DynamicValue::STRUCT:
      walkStruct(value.as<capnp::DynamicStruct>());
      break;
    case capnp::DynamicValue::LIST:
      for (auto element : value.as<capnp::DynamicList>())
        walk(element);
      break;
    case capnp::DynamicValue::TEXT:
      (void)value.as<capnp::Text>();
      break;
    case capnp::DynamicValue::DATA:
      (void)value.as<capnp::Data>();
      break;
    default:
      break;  // scalars and enums cannot be malformed
  }
}

}  // namespace

template <typename Root>
DecodeResult<Root> decodeAs(const void* data, std::size_t size, const DecodeLimits& limits) {
  if (size > limits.maxFrameBytes)
    return "frame of " + std::to_string(size) + " bytes exceeds the limit of " +
           std::to_string(limits.maxFrameBytes);
  if (size == 0 || size % sizeof(capnp::word) != 0)
    return "frame of " + std::to_string(size) + " bytes is not a whole number of words";
  auto words = kj::heapArray<capnp::word>(size / sizeof(capnp::word));
  std::memcpy(words.begin(), data, size);
  capnp::ReaderOptions walk;
  walk.traversalLimitInWords = limits.traversalLimitWords;
  walk.nestingLimit = limits.nestingLimit;
  capnp::ReaderOptions handlers = walk;
  handlers.traversalLimitInWords =
      limits.traversalLimitWords * std::max(1u, limits.fullReadsAfterDecode);
  std::unique_ptr<Decoded<Root>> decoded;
  KJ_IF_MAYBE (exception, kj::runCatchingExceptions([&] {
                 decoded = std::make_unique<Decoded<Root>>(kj::mv(words), walk, handlers);
                 // Walk the whole message now, typed: every pointer is bounds- and kind-checked
                 // here, once, so handlers can read any field without a malformed message throwing
                 // in the event loop.
                 walkStruct(capnp::toDynamic(decoded->root()));
               })) {
    return "malformed message: " + std::string(exception->getDescription().cStr());
  }
  decoded->resetBudget();
  return decoded;
}

DecodeResult<Envelope> decodeEnvelope(const zmq::message_t& frame, const DecodeLimits& limits) {
  return decodeAs<Envelope>(frame.data(), frame.size(), limits);
}

zmq::message_t encode(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return zmq::message_t(bytes.begin(), bytes.size());
}

EnvelopeBuilder::EnvelopeBuilder() : envelope(message.initRoot<Envelope>()) {
  envelope.setMajor(PROTOCOL_MAJOR);
  envelope.setMinor(PROTOCOL_MINOR);
}

std::optional<std::string> checkVersion(std::uint16_t peerMajor, std::uint16_t peerMinor) {
  if (peerMajor == PROTOCOL_MAJOR) return std::nullopt;
  return "protocol version mismatch: peer speaks " + std::to_string(peerMajor) + "." +
         std::to_string(peerMinor) + ", this side speaks " + std::to_string(PROTOCOL_MAJOR) + "." +
         std::to_string(PROTOCOL_MINOR) + "; upgrade the older side";
}

template DecodeResult<Envelope> decodeAs<Envelope>(const void*, std::size_t, const DecodeLimits&);
template DecodeResult<TransferMessage> decodeAs<TransferMessage>(const void*, std::size_t,
                                                                 const DecodeLimits&);
template DecodeResult<Manifest> decodeAs<Manifest>(const void*, std::size_t, const DecodeLimits&);

}  // namespace imgpipe::proto
