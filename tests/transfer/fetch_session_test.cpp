// The receiver's state machines, driven by hand: no sockets, no clocks, no threads.
#include "transfer/fetch_session.h"

#include <gtest/gtest.h>

#include <map>

#include "common/hash.h"
#include "protocol/ids.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
using namespace std::chrono_literals;
using Body = proto::TransferMessage::Body;

namespace {

constexpr std::uint32_t kChunk = 64 << 10;

const std::string kTarget(64, 'a');
const std::string kBasis(64, 'b');

struct Fixture {
  std::string content;
  Manifest manifest;

  explicit Fixture(std::uint32_t chunks) {
    content.resize(static_cast<size_t>(chunks) * kChunk);
    for (size_t i = 0; i < content.size(); ++i)
      content[i] = static_cast<char>(i * 7 + i / 9973);
    manifest.imageName = "img";
    manifest.imageVersion = "1";
    manifest.size = content.size();
    manifest.chunkSize = kChunk;
    manifest.sha256 = sha256(content);
    manifest.sha512 = sha512(content);
    for (std::uint32_t i = 0; i < chunks; ++i)
      manifest.chunkHashes += sha256(chunk(i));
  }
  std::string chunk(std::uint32_t i) const { return content.substr(size_t(i) * kChunk, kChunk); }
  std::string id() const { return manifest.id(); }
};

class MemorySink : public ChunkSink {
 public:
  explicit MemorySink(const Manifest& m) : m_(m), have_(m.chunkCount(), false) {}
  bool has(std::uint32_t i) override { return have_[i]; }
  bool write(std::uint32_t i, std::span<const std::byte> d) override {
    std::string s(reinterpret_cast<const char*>(d.data()), d.size());
    if (sha256(s) != m_.chunkHash(i)) return false;
    have_[i] = true;
    return true;
  }
  std::vector<std::uint32_t> missing() override {
    std::vector<std::uint32_t> out;
    for (std::uint32_t i = 0; i < have_.size(); ++i)
      if (!have_[i]) out.push_back(i);
    return out;
  }
  std::uint64_t bytesDone() override {
    std::uint64_t n = 0;
    for (std::uint32_t i = 0; i < have_.size(); ++i)
      if (have_[i]) n += m_.chunkLength(i);
    return n;
  }
  void drop(std::uint32_t i) { have_[i] = false; }

 private:
  const Manifest& m_;
  std::vector<bool> have_;
};

// Decodes what a conversation sent.
struct Sent {
  std::vector<wire::Decoded> messages;
  std::vector<std::string> payloads;
  std::vector<std::uint32_t> requested() const {
    std::vector<std::uint32_t> out;
    for (const auto& m : messages)
      if (m->root().getBody().which() == Body::GET_CHUNKS)
        for (auto i : m->root().getBody().getGetChunks().getIndices())
          out.push_back(i);
    return out;
  }
  size_t count(Body::Which w) const {
    size_t n = 0;
    for (const auto& m : messages)
      n += m->root().getBody().which() == w;
    return n;
  }
};

Sent take(Conversation& c) {
  Sent s;
  for (auto& f : c.takeOutgoing()) {
    auto d = wire::decode(f.header.data(), f.header.size());
    EXPECT_TRUE(std::holds_alternative<wire::Decoded>(d));
    s.messages.push_back(std::move(std::get<wire::Decoded>(d)));
    s.payloads.push_back(f.payload);
  }
  return s;
}

// Feeds one sender message (and payload) to a conversation.
void deliver(Conversation& c, wire::Message& m, const std::string& payload, TimePoint now) {
  auto bytes = m.bytes();
  auto d = wire::decode(bytes.data(), bytes.size());
  ASSERT_TRUE(std::holds_alternative<wire::Decoded>(d));
  c.received(std::get<wire::Decoded>(d)->root(),
             {reinterpret_cast<const std::byte*>(payload.data()), payload.size()}, now);
}

void deliverChunk(Conversation& c, const Fixture& f, std::uint32_t i, TimePoint now,
                  std::string payload = {}) {
  wire::Message m;
  auto h = m.body().initChunk();
  h.setArtifactId(f.id());
  h.setIndex(i);
  h.setSize(kChunk);
  deliver(c, m, payload.empty() ? f.chunk(i) : payload, now);
}

FetchOptions smallWindow() {
  FetchOptions o;
  o.window = {4 * kChunk, 4 * kChunk, 4 * kChunk};
  return o;
}

TimePoint t0() {
  return TimePoint{} + 1000s;
}

}  // namespace

TEST(FetchSession, AsksInOrderWithinTheCreditWindow) {
  Fixture f(20);
  MemorySink sink(f.manifest);
  FetchSession s(f.id(), f.manifest, sink, smallWindow(), t0());
  EXPECT_TRUE(take(s).messages.empty()) << "nothing is sent before the connection is up";
  s.connected(t0());
  EXPECT_EQ(take(s).requested(), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  deliverChunk(s, f, 0, t0() + 10ms);
  EXPECT_EQ(take(s).requested(), std::vector<std::uint32_t>{4});
  EXPECT_EQ(s.bytesDone(), kChunk);
}

TEST(FetchSession, FinishesWithEveryChunkVerified) {
  Fixture f(9);
  MemorySink sink(f.manifest);
  FetchSession s(f.id(), f.manifest, sink, smallWindow(), t0());
  s.connected(t0());
  auto now = t0();
  while (!s.finished()) {
    auto sent = take(s);
    ASSERT_FALSE(sent.requested().empty());
    for (auto i : sent.requested())
      deliverChunk(s, f, i, now += 1ms);
  }
  EXPECT_TRUE(sink.missing().empty());
  EXPECT_FALSE(s.failed());
}

TEST(FetchSession, AChunkWithWrongContentIsAskedForAgainThenTheSenderIsGivenUp) {
  Fixture f(6);
  MemorySink sink(f.manifest);
  auto o = smallWindow();
  o.maxBadCopies = 3;
  FetchSession s(f.id(), f.manifest, sink, o, t0());
  s.connected(t0());
  take(s);
  std::string bad = f.chunk(1);
  bad[0] ^= 0x55;
  deliverChunk(s, f, 1, t0() + 1ms, bad);
  EXPECT_FALSE(sink.has(1));
  EXPECT_EQ(s.badChunks(), 1u);
  EXPECT_EQ(take(s).requested(), std::vector<std::uint32_t>{1}) << "the window is full again";
  deliverChunk(s, f, 1, t0() + 2ms, bad);
  deliverChunk(s, f, 1, t0() + 3ms, bad);
  EXPECT_TRUE(s.failed());
  EXPECT_NE(s.error().find("chunk 1"), std::string::npos) << s.error();
}

TEST(FetchSession, ALostConnectionCostsOnlyWhatWasInFlight) {
  Fixture f(12);
  MemorySink sink(f.manifest);
  FetchSession s(f.id(), f.manifest, sink, smallWindow(), t0());
  s.connected(t0());
  take(s);  // 0..3
  deliverChunk(s, f, 0, t0() + 1ms);
  deliverChunk(s, f, 1, t0() + 2ms);
  take(s);  // 4, 5
  s.disconnected(t0() + 3ms);
  EXPECT_EQ(s.state(), "retrying");
  EXPECT_TRUE(take(s).messages.empty());
  s.connected(t0() + 5s);
  // Asked again: what was in flight (2..5), nothing that had arrived.
  EXPECT_EQ(take(s).requested(), (std::vector<std::uint32_t>{2, 3, 4, 5}));
  // A chunk from before the reconnect that arrives late is still good data.
  deliverChunk(s, f, 7, t0() + 6s);
  EXPECT_TRUE(sink.has(7));
}

TEST(FetchSession, AChunkDroppedAfterItWasStoredIsFetchedAgain) {
  Fixture f(3);
  MemorySink sink(f.manifest);
  FetchSession s(f.id(), f.manifest, sink, smallWindow(), t0());
  s.connected(t0());
  take(s);
  deliverChunk(s, f, 0, t0() + 1ms);
  deliverChunk(s, f, 1, t0() + 2ms);
  sink.drop(0);  // a relay serving it found it damaged on disk
  s.requeue(0);
  deliverChunk(s, f, 2, t0() + 3ms);
  EXPECT_FALSE(s.finished());
  s.tick(t0() + 4ms);
  auto sent = take(s);
  EXPECT_EQ(sent.requested(), std::vector<std::uint32_t>{0});
  deliverChunk(s, f, 0, t0() + 5ms);
  EXPECT_TRUE(s.finished());
}

TEST(FetchSession, TellsStalledFromWaitingForUpstreamAndReplacesASilentConnection) {
  Fixture f(8);
  MemorySink sink(f.manifest);
  auto o = smallWindow();
  o.liveness.stallAfter = 3s;
  o.liveness.deadAfter = 5s;
  FetchSession s(f.id(), f.manifest, sink, o, t0());
  s.connected(t0());
  take(s);
  // The sender answers pings but sends no chunks: a relay waiting for its own upstream.
  for (int sec = 1; sec <= 4; ++sec) {
    s.tick(t0() + std::chrono::seconds(sec));
    EXPECT_EQ(take(s).count(Body::PING), 1u);
    wire::Message pong;
    pong.body().setPong(sec);
    deliver(s, pong, "", t0() + std::chrono::seconds(sec) + 10ms);
  }
  EXPECT_EQ(s.state(), "waiting for upstream");
  // Now nothing at all: stalled, then a new connection.
  s.tick(t0() + 8s);
  EXPECT_EQ(s.state(), "stalled");
  EXPECT_FALSE(s.takeReconnectRequest());
  s.tick(t0() + 9s + 100ms);
  EXPECT_TRUE(s.takeReconnectRequest());
  EXPECT_EQ(s.state(), "retrying");
  s.connected(t0() + 10s);
  EXPECT_EQ(take(s).requested(), (std::vector<std::uint32_t>{0, 1, 2, 3}));
}

TEST(FetchSession, PacesRequestsToTheRateLimit) {
  Fixture f(40);
  MemorySink sink(f.manifest);
  FetchOptions o;
  o.rateLimit = 2 * kChunk;  // two chunks a second
  FetchSession s(f.id(), f.manifest, sink, o, t0());
  s.connected(t0());
  std::size_t asked = take(s).requested().size();
  for (int ms = 100; ms <= 5000; ms += 100) {
    s.tick(t0() + std::chrono::milliseconds(ms));
    asked += take(s).requested().size();
  }
  // The burst (one chunk, or a tenth of a second of the rate) plus 5 s at two a second.
  EXPECT_GE(asked, 10u);
  EXPECT_LE(asked, 12u);
}

TEST(ManifestExchange, RefusesAManifestThatIsNotTheTrustAnchor) {
  Fixture f(2);
  const std::string encoded = encodeManifest(f.manifest);
  ManifestExchange ex(f.id(), std::string(64, '0'), {});
  ex.connected(t0());
  EXPECT_EQ(take(ex).count(Body::GET_MANIFEST), 1u);
  wire::Message m;
  auto r = m.body().initManifest();
  r.setArtifactId(f.id());
  r.setEncoded(wire::asData(encoded));
  deliver(ex, m, "", t0());
  EXPECT_TRUE(ex.failed());
  EXPECT_NE(ex.error().find("not the expected"), std::string::npos) << ex.error();
}

TEST(ManifestExchange, WaitsForARelayThatDoesNotHaveItYet) {
  Fixture f(2);
  const std::string encoded = encodeManifest(f.manifest);
  LivenessOptions lo;
  lo.retryDelay = 1s;
  ManifestExchange ex(f.id(), manifestDigest(encoded), lo);
  ex.connected(t0());
  take(ex);
  wire::Message u;
  auto un = u.body().initUnavailable();
  un.setArtifactId(f.id());
  un.setReason("not here yet");
  un.setRetryable(true);
  deliver(ex, u, "", t0());
  EXPECT_EQ(ex.state(), "waiting for upstream");
  ex.tick(t0() + 500ms);
  EXPECT_EQ(take(ex).count(Body::GET_MANIFEST), 0u);
  ex.tick(t0() + 1100ms);
  EXPECT_EQ(take(ex).count(Body::GET_MANIFEST), 1u);
  wire::Message m;
  auto r = m.body().initManifest();
  r.setArtifactId(f.id());
  r.setEncoded(wire::asData(encoded));
  deliver(ex, m, "", t0() + 1200ms);
  EXPECT_TRUE(ex.finished());
  EXPECT_EQ(ex.manifest().size, f.manifest.size);
}

TEST(DeltaExchange, UploadsTheSignatureWhenAskedThenWaitsForTheDelta) {
  std::uint32_t askedBlock = 0;
  const std::string sig(2 * kSignaturePart + 5, 's');
  DeltaExchange ex(kTarget, kBasis, {DeltaFormat::rdiffXz},
                   [&](std::uint32_t block) {
                     askedBlock = block;
                     return sig;
                   },
                   {});
  ex.connected(t0());
  EXPECT_EQ(take(ex).count(Body::OPEN_DELTA), 1u);
  auto reply = [&](auto fill) {
    wire::Message m;
    auto r = m.body().initDeltaReply();
    r.setTargetId(kTarget);
    r.setBasisId(kBasis);
    fill(r);
    deliver(ex, m, "", t0());
  };
  reply([](auto r) { r.setNeedSignature(2048); });
  EXPECT_EQ(askedBlock, 2048u);
  auto sent = take(ex);
  EXPECT_EQ(sent.count(Body::SIGNATURE_PART), 3u);
  EXPECT_EQ(sent.count(Body::OPEN_DELTA), 1u);
  std::string uploaded;
  for (auto& p : sent.payloads)
    uploaded += p;
  EXPECT_EQ(uploaded, sig);
  reply([](auto r) { r.setPending(); });
  EXPECT_EQ(ex.state(), "waiting for upstream");
  ex.tick(t0() + 300ms);
  EXPECT_EQ(take(ex).count(Body::OPEN_DELTA), 1u);
  reply([](auto r) {
    auto ready = r.initReady();
    ready.setArtifactId(ids::deltaId(kBasis, kTarget));
    ready.setEncoded(wire::asData("manifest bytes"));
  });
  EXPECT_TRUE(ex.finished());
  ASSERT_TRUE(ex.deltaManifest());
  EXPECT_EQ(*ex.deltaManifest(), "manifest bytes");
}

TEST(DeltaExchange, ARefusalEndsItWithoutADelta) {
  DeltaExchange ex(kTarget, kBasis, {DeltaFormat::rdiffXz}, [](std::uint32_t) { return ""; }, {});
  ex.connected(t0());
  take(ex);
  wire::Message m;
  auto r = m.body().initDeltaReply();
  r.setTargetId(kTarget);
  r.setBasisId(kBasis);
  r.setUnavailable("a delta would be 80% of the image");
  deliver(ex, m, "", t0());
  EXPECT_TRUE(ex.finished());
  EXPECT_FALSE(ex.deltaManifest());
  EXPECT_NE(ex.refusal().find("80%"), std::string::npos);
}

TEST(Conversation, KeepsRetryingARefusedKeyThenGivesUp) {
  LivenessOptions lo;
  lo.retryDelay = 1s;
  lo.authFailTimeout = 5s;
  ManifestExchange ex("id", "", lo);
  ex.authFailed(t0());
  EXPECT_EQ(ex.state(), "retrying");
  ex.tick(t0() + 500ms);
  EXPECT_FALSE(ex.takeReconnectRequest());
  ex.tick(t0() + 1100ms);
  EXPECT_TRUE(ex.takeReconnectRequest()) << "a refused handshake is tried again on a new socket";
  ex.authFailed(t0() + 1200ms);
  ex.tick(t0() + 3s);
  EXPECT_TRUE(ex.takeReconnectRequest());
  EXPECT_FALSE(ex.failed());
  ex.tick(t0() + 6s);
  EXPECT_TRUE(ex.failed());
  EXPECT_NE(ex.error().find("refused our key"), std::string::npos) << ex.error();
}

TEST(Conversation, AGrantArrivingInTimeEndsTheRetrying) {
  LivenessOptions lo;
  lo.authFailTimeout = 5s;
  ManifestExchange ex("id", "", lo);
  ex.authFailed(t0());
  ex.connected(t0() + 2s);
  ex.tick(t0() + 10s);
  EXPECT_FALSE(ex.failed());
}

TEST(FetchSession, NotHereYetPausesTheRequestsForTheRetryDelay) {
  Fixture f(4);
  MemorySink sink(f.manifest);
  auto o = smallWindow();
  o.liveness.retryDelay = 1s;
  FetchSession s(f.id(), f.manifest, sink, o, t0());
  s.connected(t0());
  take(s);
  wire::Message u;
  auto un = u.body().initUnavailable();
  un.setArtifactId(f.id());
  un.setReason("not here yet");
  un.setRetryable(true);
  deliver(s, u, "", t0() + 1ms);
  EXPECT_EQ(s.state(), "waiting for upstream");
  s.tick(t0() + 500ms);
  EXPECT_TRUE(take(s).requested().empty());
  s.tick(t0() + 1100ms);
  EXPECT_EQ(take(s).requested(), (std::vector<std::uint32_t>{0, 1, 2, 3}));
}

// Issue 23: an upstream that answers "not here yet" forever held a hop forever. With nothing
// learned for noProgressAfter the conversation fails, as transient (the coordinator runs the hop
// again), naming the state it was stuck in; a transfer whose chunks keep coming never does.
TEST(ManifestExchange, AnUpstreamThatIsNeverReadyFailsTheHopAfterTheDeadline) {
  Fixture f(2);
  LivenessOptions lo;
  lo.retryDelay = 1s;
  lo.noProgressAfter = 30s;
  ManifestExchange ex(f.id(), manifestDigest(encodeManifest(f.manifest)), lo);
  ex.connected(t0());
  for (int s = 0; s <= 40 && !ex.failed(); ++s) {
    const auto now = t0() + std::chrono::seconds(s);
    ex.tick(now);
    if (take(ex).count(Body::GET_MANIFEST) == 0 && s > 0) continue;
    wire::Message u;
    auto un = u.body().initUnavailable();
    un.setArtifactId(f.id());
    un.setReason("not here yet");
    un.setRetryable(true);
    deliver(ex, u, "", now + 10ms);
    if (s < 30) {
      EXPECT_FALSE(ex.failed()) << "failed at " << s << " s: " << ex.error();
    }
  }
  ASSERT_TRUE(ex.failed());
  EXPECT_EQ(ex.errorKind(), ErrorKind::transient);
  EXPECT_NE(ex.error().find("no progress from the sender for 3"), std::string::npos) << ex.error();
  EXPECT_NE(ex.error().find("waiting for upstream"), std::string::npos) << ex.error();
}

TEST(FetchSession, ChunksThatKeepComingNeverHitTheNoProgressDeadline) {
  Fixture f(4);
  MemorySink sink(f.manifest);
  auto o = smallWindow();
  o.liveness.noProgressAfter = 30s;
  o.liveness.deadAfter = 60s;
  FetchSession s(f.id(), f.manifest, sink, o, t0());
  s.connected(t0());
  take(s);
  // One chunk every 20 s: 80 s in all, more than twice the deadline.
  for (std::uint32_t i = 0; i < 4; ++i) {
    const auto now = t0() + std::chrono::seconds(20 * (i + 1));
    s.tick(now - 1s);
    ASSERT_FALSE(s.failed()) << s.error();
    deliverChunk(s, f, i, now);
  }
  EXPECT_TRUE(s.finished()) << s.error();
  EXPECT_FALSE(s.failed());
}

// The deadline of a hop: twice the hop at its link's rate, never below the configured floor.
TEST(Liveness, TheNoProgressDeadlineFollowsTheHopsSizeAndRateAboveItsFloor) {
  const auto floor = std::chrono::milliseconds(10min);
  EXPECT_EQ(noProgressDeadline(floor, 8ull << 30, 0), floor);           // unlimited: the floor
  EXPECT_EQ(noProgressDeadline(floor, 64ull << 20, 5'000'000), floor);  // 13 s of link: the floor
  // 8 GiB at 40 Mbit/s (5 MB/s): 1718 s of link, so 3436 s.
  EXPECT_EQ(noProgressDeadline(floor, 8ull << 30, 5'000'000),
            std::chrono::milliseconds(2 * (8ull << 30) * 1000 / 5'000'000));
  // Absurd inputs neither overflow nor wrap.
  EXPECT_GE(noProgressDeadline(floor, ~0ull, 1), std::chrono::milliseconds(24h * 365));
}
