#include "protocol/codec.h"

#include <capnp/schema.h>
#include <kj/exception.h>

#include <cstring>

#include "protocol/schema/transfer.capnp.h"

namespace imgpipe::proto {

template <typename Root>
DecodeResult<Root> decodeAs(const void* data, std::size_t size, const DecodeLimits& limits) {
  if (size > limits.maxFrameBytes)
    return "frame of " + std::to_string(size) + " bytes exceeds the limit of " +
           std::to_string(limits.maxFrameBytes);
  if (size == 0 || size % sizeof(capnp::word) != 0)
    return "frame of " + std::to_string(size) + " bytes is not a whole number of words";
  auto words = kj::heapArray<capnp::word>(size / sizeof(capnp::word));
  std::memcpy(words.begin(), data, size);
  capnp::ReaderOptions options;
  options.traversalLimitInWords = limits.traversalLimitWords;
  options.nestingLimit = limits.nestingLimit;
  std::unique_ptr<Decoded<Root>> decoded;
  KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&] {
    decoded = std::make_unique<Decoded<Root>>(kj::mv(words), options);
    // Walk the whole message now: every pointer is bounds-checked here, once, so handlers can
    // read fields without a malformed pointer throwing in the middle of the event loop.
    decoded->root().totalSize();
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
