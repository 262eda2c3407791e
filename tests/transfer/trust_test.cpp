// The transfer plane's trust boundaries that need no sockets: identifiers checked at decode of
// every message kind and of manifests, grants counted per job, and what one peer can make the
// server owe it.
#include <gtest/gtest.h>

#include <functional>

#include "protocol/ids.h"
#include "transfer/grant_table.h"
#include "transfer/key_budget.h"
#include "transfer/manifest.h"
#include "transfer/peer_outbox.h"
#include "transfer/transfer_config.h"
#include "transfer/transfer_wire.h"

using namespace imgpipe;
using namespace imgpipe::transfer;

namespace {

const std::string kA(64, 'a');
const std::string kB(64, 'b');

// What a hostile peer or upstream puts where an identifier belongs.
std::vector<std::string> hostileIds() {
  return {"delta-" + kA + "-" + kB + "/../../../victim",
          "../x",
          "/etc/passwd",
          std::string(kA).replace(10, 1, std::string(1, '\0')),
          std::string(4096, 'a'),
          std::string(64, 'A'),  // not lowercase hex
          "delta-a-b",
          ""};
}

using Fill = std::function<void(proto::TransferMessage::Body::Builder, const std::string& bad)>;

struct Case {
  std::string field;
  Fill fill;
};

std::vector<Case> cases() {
  return {
      {"getManifest.artifactId", [](auto b, auto& v) { b.initGetManifest().setArtifactId(v); }},
      {"getChunks.artifactId",
       [](auto b, auto& v) {
         auto r = b.initGetChunks();
         r.setArtifactId(v);
         r.initIndices(1).set(0, 0);
       }},
      {"openDelta.targetId",
       [](auto b, auto& v) {
         auto r = b.initOpenDelta();
         r.setTargetId(v);
         r.setBasisId(kB);
       }},
      {"openDelta.basisId",
       [](auto b, auto& v) {
         auto r = b.initOpenDelta();
         r.setTargetId(kA);
         r.setBasisId(v);
       }},
      {"signaturePart.targetId",
       [](auto b, auto& v) {
         auto r = b.initSignaturePart();
         r.setTargetId(v);
         r.setBasisId(kB);
       }},
      {"signaturePart.basisId",
       [](auto b, auto& v) {
         auto r = b.initSignaturePart();
         r.setTargetId(kA);
         r.setBasisId(v);
       }},
      {"manifest.artifactId", [](auto b, auto& v) { b.initManifest().setArtifactId(v); }},
      {"chunk.artifactId", [](auto b, auto& v) { b.initChunk().setArtifactId(v); }},
      {"deltaReply.targetId",
       [](auto b, auto& v) {
         auto r = b.initDeltaReply();
         r.setTargetId(v);
         r.setBasisId(kB);
         r.setPending();
       }},
      {"deltaReply.basisId",
       [](auto b, auto& v) {
         auto r = b.initDeltaReply();
         r.setTargetId(kA);
         r.setBasisId(v);
         r.setPending();
       }},
      {"deltaReply.ready.artifactId",
       [](auto b, auto& v) {
         auto r = b.initDeltaReply();
         r.setTargetId(kA);
         r.setBasisId(kB);
         r.initReady().setArtifactId(v);
       }},
  };
}

std::string frame(const Fill& fill, const std::string& value) {
  wire::Message m;
  fill(m.body(), value);
  return m.bytes();
}

}  // namespace

TEST(WireIds, EveryIdentifierOfEveryMessageKindIsCheckedAtDecode) {
  for (const auto& c : cases()) {
    for (const auto& bad : hostileIds()) {
      SCOPED_TRACE(c.field + " = " + ids::printable(bad));
      const auto bytes = frame(c.fill, bad);
      auto d = wire::decode(bytes.data(), bytes.size());
      ASSERT_TRUE(std::holds_alternative<wire::Refused>(d));
      const auto& r = std::get<wire::Refused>(d);
      EXPECT_EQ(r.kind, wire::Refused::Kind::invalidId);
      EXPECT_NE(r.reason.find(c.field), std::string::npos) << r.reason;
      // The value is shown escaped and clipped: no NUL or megabytes in a log line.
      EXPECT_EQ(r.reason.find('\0'), std::string::npos);
      EXPECT_LT(r.reason.size(), 400u);
    }
  }
}

TEST(WireIds, WellFormedIdentifiersPass) {
  const std::string delta = ids::deltaId(kB, kA);
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.field);
    std::string good = kA;
    if (c.field == "deltaReply.ready.artifactId") good = delta;
    const auto bytes = frame(c.fill, good);
    auto d = wire::decode(bytes.data(), bytes.size());
    EXPECT_TRUE(std::holds_alternative<wire::Decoded>(d)) << std::get<wire::Refused>(d).reason;
  }
  // A delta id is an artifact id.
  const auto bytes = frame(cases()[0].fill, delta);
  auto d = wire::decode(bytes.data(), bytes.size());
  EXPECT_TRUE(std::holds_alternative<wire::Decoded>(d));
}

TEST(ManifestIds, DecodeRefusesNamesAndIdsOutsideTheirGrammar) {
  Manifest m;
  m.imageName = "img";
  m.imageVersion = "1";
  m.size = 1000;
  m.sha256 = std::string(32, 'a');
  m.sha512 = std::string(64, 'b');
  m.chunkSize = 65536;
  m.chunkHashes = std::string(32, 'c');
  std::string why;
  ASSERT_TRUE(decodeManifest(encodeManifest(m), &why)) << why;
  struct Bad {
    std::string field;
    std::function<void(Manifest&, const std::string&)> set;
    bool delta;
    ids::Kind kind;
  };
  const std::vector<Bad> bad = {
      {"imageName", [](Manifest& x, const std::string& v) { x.imageName = v; }, false,
       ids::Kind::imageName},
      {"imageVersion", [](Manifest& x, const std::string& v) { x.imageVersion = v; }, false,
       ids::Kind::imageVersion},
      {"basisId", [](Manifest& x, const std::string& v) { x.basisId = v; }, true,
       ids::Kind::imageId},
      {"targetId", [](Manifest& x, const std::string& v) { x.targetId = v; }, true,
       ids::Kind::imageId},
  };
  for (const auto& b : bad) {
    for (const auto& v : hostileIds()) {
      if (ids::valid(b.kind, v)) continue;  // "delta-a-b" is a fine image name
      SCOPED_TRACE(b.field + " = " + ids::printable(v));
      Manifest x = m;
      if (b.delta) {
        x.kind = ArtifactKind::delta;
        x.basisId = kA;
        x.targetId = kB;
      }
      b.set(x, v);
      why.clear();
      EXPECT_FALSE(decodeManifest(encodeManifest(x), &why));
      EXPECT_NE(why.find(b.field), std::string::npos) << why;
    }
  }
  // An image manifest naming a basis is not an image manifest.
  Manifest x = m;
  x.basisId = kA;
  EXPECT_FALSE(decodeManifest(encodeManifest(x), &why));
}

TEST(GrantTable, RevokingOneJobsGrantLeavesAnotherJobsGrantOfTheSameArtifact) {
  GrantTable t;
  const std::string key(40, 'k');
  t.grant(kA, key, "ctrl", "1");
  t.grant(kA, key, "ctrl", "2");
  EXPECT_EQ(t.jobs(kA, key), 2u);
  EXPECT_FALSE(t.revoke(kA, key, "1"));
  EXPECT_TRUE(t.allows(key, kA));
  EXPECT_TRUE(t.knows(key));
  EXPECT_FALSE(t.revoke(kA, key, "1")) << "a second revoke of job 1 must not take job 2's";
  EXPECT_TRUE(t.allows(key, kA));
  EXPECT_TRUE(t.allows(key, ids::deltaId(kB, kA))) << "a grant of an image covers its deltas";
  EXPECT_FALSE(t.allows(key, kB));
  EXPECT_TRUE(t.revoke(kA, key, "2"));
  EXPECT_FALSE(t.allows(key, kA));
  EXPECT_FALSE(t.knows(key));
  // The same job granting twice holds one grant.
  t.grant(kA, key, "ctrl", "3");
  t.grant(kA, key, "ctrl", "3");
  EXPECT_TRUE(t.revoke(kA, key, "3"));
  EXPECT_FALSE(t.knows(key));
}

TEST(PeerOutbox, OwesEachChunkOnceAndHoldsAtMostItsCapacity) {
  PeerOutbox box(8);
  const auto now = std::chrono::steady_clock::now();
  int kept = 0;
  for (int i = 0; i < 100000; ++i)
    kept += box.add({kA, 0, now});
  EXPECT_EQ(kept, 1);
  EXPECT_EQ(box.size(), 1u);
  for (std::uint32_t i = 1; i < 100; ++i)
    box.add({kA, i, now});
  EXPECT_EQ(box.size(), 8u);
  EXPECT_EQ(box.next()->index, 0u);
  EXPECT_TRUE(box.add({kA, 0, now})) << "owed again once it went out";
}

TEST(KeyBudget, AKeysConnectionsAndRequestsAreCappedWhateverTheNumberOfConnections) {
  KeyBudget b(3, 10);
  const auto now = std::chrono::steady_clock::now();
  const std::string key(40, 'k'), other(40, 'o');
  int admitted = 0;
  for (int i = 0; i < 200; ++i)
    admitted += b.admit("c" + std::to_string(i), key, now);
  EXPECT_EQ(admitted, 3);
  EXPECT_EQ(b.keyConnections(key), 3u);
  EXPECT_FALSE(b.admitted("c3")) << "nothing kept for a connection beyond the cap";
  EXPECT_TRUE(b.admit("c0", key, now)) << "an admitted connection stays admitted";
  EXPECT_FALSE(b.admit("c0", other, now)) << "a routing id is one key's";
  EXPECT_TRUE(b.admit("x", other, now)) << "another key has its own connections";
  // Requests: 10 for the key across its connections, however they are spread.
  int taken = 0;
  for (int i = 0; i < 100; ++i)
    taken += b.take("c" + std::to_string(i % 3));
  EXPECT_EQ(taken, 10);
  EXPECT_EQ(b.keyRequests(key), 10u);
  EXPECT_FALSE(b.take("c5")) << "a connection not admitted holds nothing";
  EXPECT_TRUE(b.take("x")) << "another key's requests are its own";
  b.give("c0");
  EXPECT_EQ(b.keyRequests(key), 9u);
  EXPECT_TRUE(b.take("c1"));
  // A connection gone returns its slot and its requests.
  const auto held = b.requests("c1");
  EXPECT_GT(held, 0u);
  b.forget("c1");
  EXPECT_EQ(b.keyRequests(key), 10u - held);
  EXPECT_EQ(b.keyConnections(key), 2u);
  EXPECT_TRUE(b.admit("c100", key, now));
  EXPECT_FALSE(b.admit("c101", key, now));
  b.give("c1");  // gone: nothing to give back twice
  EXPECT_EQ(b.keyRequests(key), 10u - held);
}

TEST(KeyBudget, OnlySilentConnectionsHoldingNothingAreIdle) {
  KeyBudget b(8, 10);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string key(40, 'k');
  b.admit("quiet", key, t0);
  b.admit("holding", key, t0);
  b.admit("talking", key, t0);
  ASSERT_TRUE(b.take("holding"));
  b.admit("talking", key, t0 + std::chrono::seconds(60));
  EXPECT_EQ(b.idleSince(t0 + std::chrono::seconds(30)), std::vector<std::string>{"quiet"});
}

TEST(TransferConfig, ReadsTheLimitsStrictly) {
  auto doc = YamlReader::fromString(R"(
transfer:
  limits:
    peer_queue: 8M
    peer_requests: 100
    connections_per_key: 3
    delta_jobs: 1
    signature_max: 1M
    signature_uploads: 2
    upload_timeout: 5s
)",
                                    "test");
  auto c = parseTransferConfig(doc.at("transfer"), "/state", true);
  EXPECT_EQ(c.limits.peerQueueBytes, 8u << 20);
  EXPECT_EQ(c.limits.peerRequests, 100u);
  EXPECT_EQ(c.limits.connectionsPerKey, 3u);
  EXPECT_EQ(c.limits.deltaJobs, 1u);
  EXPECT_EQ(c.limits.signatureMax, 1u << 20);
  EXPECT_EQ(c.limits.signatureUploads, 2u);
  EXPECT_EQ(c.limits.uploadTimeout, std::chrono::seconds(5));
  EXPECT_EQ(c.serverOptions().limits.deltaJobs, 1u);
  auto defaults = parseTransferConfig(YamlReader::fromString("{}", "t"), "/state", true);
  EXPECT_EQ(defaults.limits.deltaJobs, 2u);
  EXPECT_EQ(defaults.limits.connectionsPerKey, 8u);
  auto unknown = YamlReader::fromString("transfer:\n  limits:\n    peer_qeue: 8M\n", "t");
  try {
    parseTransferConfig(unknown.at("transfer"), "/state", true);
    FAIL() << "an unknown key was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("peer_qeue"), std::string::npos) << e.what();
  }
  auto zero = YamlReader::fromString("transfer:\n  limits:\n    delta_jobs: 0\n", "t");
  EXPECT_THROW(parseTransferConfig(zero.at("transfer"), "/state", true), std::exception);
  auto noConnections =
      YamlReader::fromString("transfer:\n  limits:\n    connections_per_key: 0\n", "t");
  EXPECT_THROW(parseTransferConfig(noConnections.at("transfer"), "/state", true), std::exception);
}
