#include "protocol/codec.h"

#include <capnp/dynamic.h>
#include <gtest/gtest.h>

#include <random>

#include "protocol/id_check.h"
#include "protocol/schema/transfer.capnp.h"

using namespace imgpipe;

TEST(Codec, RoundTripsAnEnvelope) {
  proto::EnvelopeBuilder b;
  auto hello = b.body().initHello();
  hello.setName("build-1");
  hello.setRole(proto::Role::BUILD);
  auto frame = b.frame();
  auto decoded = proto::decodeEnvelope(frame);
  ASSERT_EQ(decoded.index(), 0u) << std::get<1>(decoded);
  auto env = std::get<0>(decoded)->root();
  EXPECT_EQ(env.getMajor(), proto::PROTOCOL_MAJOR);
  EXPECT_EQ(std::string(env.getBody().getHello().getName()), "build-1");
}

TEST(Codec, RefusesOtherMajorVersionNamingBoth) {
  auto reason = proto::checkVersion(proto::PROTOCOL_MAJOR + 1, 3);
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find(std::to_string(proto::PROTOCOL_MAJOR + 1) + ".3"), std::string::npos);
  EXPECT_FALSE(proto::checkVersion(proto::PROTOCOL_MAJOR, 99));
}

TEST(Codec, OversizedAndTruncatedFramesAreRejectedNotThrown) {
  proto::DecodeLimits limits;
  limits.maxFrameBytes = 1024;
  zmq::message_t big(4096);
  EXPECT_EQ(proto::decodeEnvelope(big, limits).index(), 1u);

  proto::EnvelopeBuilder b;
  b.body().initHello().setName(std::string(200, 'n'));
  auto frame = b.frame();
  for (size_t cut = 8; cut < frame.size(); cut += 8) {
    zmq::message_t part(frame.data(), cut);
    EXPECT_EQ(proto::decodeEnvelope(part).index(), 1u) << "cut at " << cut;
  }
}

TEST(Codec, RandomBytesNeverThrow) {
  std::mt19937 rng(42);
  int rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    size_t n = (rng() % 64 + 1) * 8;
    zmq::message_t m(n);
    for (size_t j = 0; j < n; ++j)
      m.data<uint8_t>()[j] = static_cast<uint8_t>(rng());
    auto r = proto::decodeEnvelope(m);
    if (r.index() == 1)
      ++rejected;
    else
      (void)std::get<0>(r)->root().getBody().which();  // must be safe to read
  }
  EXPECT_GT(rejected, 0);
}

// Found by fuzz_decode: a valid Envelope read as a TransferMessage has pointers of the wrong kind
// (a struct where text belongs). Bounds checks pass; the typed walk at decode must reject it.
TEST(Codec, WrongPointerKindIsRejectedAtDecode) {
  proto::EnvelopeBuilder b;
  b.body().initRequest().initKind().initSubmit().setDefinition("name: x\n");
  auto frame = b.frame();
  auto r =
      proto::decodeAs<proto::TransferMessage>(frame.data(), frame.size(), proto::DecodeLimits{});
  if (r.index() == 0) {
    // If it decodes at all, every field must be readable.
    EXPECT_NO_THROW((void)capnp::toDynamic(std::get<0>(r)->root()).totalSize());
  } else {
    EXPECT_NE(std::get<1>(r).find("malformed"), std::string::npos) << std::get<1>(r);
  }
}

// Found by fuzz_control (CI, seed 2384938786): 144 bytes whose typed walk fits the traversal
// budget only just (a list of zero-sized elements costs a word per element), so the handler's
// read after checkIds (which every handler runs first) threw in the event loop. Handlers now get
// the budget of several full reads.
TEST(Codec, AFrameThatFillsTheWalksBudgetCanStillBeReadInFullAgain) {
  const std::uint8_t frame[] = {
      0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01,
      0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
      0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x59, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x69, 0x64, 0x2d, 0x31, 0x00, 0x05,
      0x00, 0x00, 0x00, 0x3a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x78, 0x38, 0x37, 0x5f, 0x36, 0x34, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00,
      0x00, 0x31, 0x2e, 0xd0, 0xd2, 0x31, 0x00, 0x00, 0x00,
  };
  auto readInFull = [](proto::Decoded<proto::Envelope>& d) {
    (void)proto::checkIds(d.root());  // as every handler does first
    (void)proto::checkIds(d.root());
  };
  proto::DecodeLimits limits;
  limits.maxFrameBytes = 1 << 20;
  auto r = proto::decodeAs<proto::Envelope>(frame, sizeof frame, limits);
  ASSERT_EQ(r.index(), 0u) << std::get<1>(r);
  for (unsigned i = 0; i < limits.fullReadsAfterDecode / 2; ++i)  // two reads each
    EXPECT_NO_THROW(readInFull(*std::get<0>(r))) << "read " << i;
  // What it was before: one walk's budget, which the second read overruns.
  limits.fullReadsAfterDecode = 1;
  auto tight = proto::decodeAs<proto::Envelope>(frame, sizeof frame, limits);
  ASSERT_EQ(tight.index(), 0u);
  EXPECT_ANY_THROW(readInFull(*std::get<0>(tight)));
}
