#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <zmq.hpp>

#include "protocol/schema/control.capnp.h"

namespace imgpipe::proto {

// Limits applied to every frame before and while it is decoded. A frame over maxFrameBytes is
// dropped unread; the traversal and nesting limits bound the work a hostile message can cause.
struct DecodeLimits {
  std::size_t maxFrameBytes = 4 << 20;
  std::uint64_t traversalLimitWords = (8u << 20) / 8;  // 8 MiB worth of words
  int nestingLimit = 32;
  // A decoded message can be read in full this many times by its handlers (logging it, checking
  // its ids, reading it): their reader's budget is this multiple of the one the validating walk
  // had to fit in. A list of zero-sized elements costs a word per element, so a frame of a few
  // bytes can fill one budget; without headroom the handlers' second read would throw.
  unsigned fullReadsAfterDecode = 4;
};

// One decoded message: owns an 8-byte-aligned copy of the frame (ZeroMQ gives no alignment
// guarantee) and the reader over it. Every field was read once, typed, during decode, so later
// field access cannot throw on a malformed message.
template <typename Root>
class Decoded {
 public:
  // The walk reads through `walkOptions`; handlers, after resetBudget(), through `options`.
  Decoded(kj::Array<capnp::word> words, const capnp::ReaderOptions& walkOptions,
          const capnp::ReaderOptions& options)
      : words_(kj::mv(words)), options_(options) {
    reader_.emplace(words_.asPtr(), walkOptions);
  }
  typename Root::Reader root() { return reader_->template getRoot<Root>(); }
  // The traversal limit counts every word read through one reader; after the validating walk,
  // handlers get a fresh budget of DecodeLimits::fullReadsAfterDecode such walks.
  void resetBudget() {
    reader_.reset();
    reader_.emplace(words_.asPtr(), options_);
  }

 private:
  kj::Array<capnp::word> words_;
  capnp::ReaderOptions options_;
  std::optional<capnp::FlatArrayMessageReader> reader_;
};

template <typename Root>
using DecodeResult = std::variant<std::unique_ptr<Decoded<Root>>, std::string>;

// Never throws: a frame that is too large, truncated or malformed yields the reason instead.
DecodeResult<Envelope> decodeEnvelope(const zmq::message_t& frame, const DecodeLimits& limits = {});

// Serialises a finished message into one frame.
zmq::message_t encode(capnp::MessageBuilder& message);

// A message builder whose root envelope already carries our protocol version.
struct EnvelopeBuilder {
  capnp::MallocMessageBuilder message;
  Envelope::Builder envelope;
  EnvelopeBuilder();
  Envelope::Body::Builder body() { return envelope.initBody(); }
  zmq::message_t frame() { return encode(message); }
};

// nullopt when the peer speaks our major version; else the reason, naming both versions.
std::optional<std::string> checkVersion(std::uint16_t peerMajor, std::uint16_t peerMinor);

// Decodes any root type with the same limits and guarantees as decodeEnvelope.
template <typename Root>
DecodeResult<Root> decodeAs(const void* data, std::size_t size, const DecodeLimits& limits);

}  // namespace imgpipe::proto
