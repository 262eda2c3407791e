#include "common/net/liveness.h"

#include <gtest/gtest.h>

using namespace imgpipe::net;
using namespace std::chrono_literals;

TEST(Liveness, ExpiresAfterMissedBeats) {
  HeartbeatPolicy p{1000ms, 3};
  auto t0 = Clock::time_point{} + 100s;
  PeerLiveness l(p, t0);
  EXPECT_FALSE(l.expired(t0 + 2999ms));
  EXPECT_TRUE(l.expired(t0 + 3001ms));
  l.heard(t0 + 3000ms);
  EXPECT_FALSE(l.expired(t0 + 5000ms));
}

TEST(Liveness, HeartbeatDueEveryInterval) {
  HeartbeatPolicy p{1000ms, 3};
  auto t0 = Clock::time_point{} + 100s;
  PeerLiveness l(p, t0);
  EXPECT_FALSE(l.heartbeatDue(t0 + 999ms));
  EXPECT_TRUE(l.heartbeatDue(t0 + 1000ms));
  l.sent(t0 + 1000ms);
  EXPECT_FALSE(l.heartbeatDue(t0 + 1500ms));
}

TEST(Backoff, DoublesToCapAndResets) {
  Backoff b(1000ms, 32000ms);
  std::vector<long> seen;
  for (int i = 0; i < 8; ++i)
    seen.push_back(b.next().count());
  EXPECT_EQ(seen, (std::vector<long>{1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000}));
  b.reset();
  EXPECT_EQ(b.next().count(), 1000);
}

TEST(Liveness, DeadAfterGrowsWithTheLongPathsRtoButNeverBelowTheFloor) {
  auto t0 = Clock::time_point{} + 100s;
  PeerLiveness l(1000ms, 5000ms, t0);
  EXPECT_EQ(l.deadAfter(), 5000ms);  // nothing known of the path: the configured floor
  l.pathRto(200ms);                  // a LAN: Linux's minimum RTO; the floor still holds
  EXPECT_EQ(l.deadAfter(), 5000ms);
  // 300 ms of round trip with its variation: RTO 1.1 s, so 8.8 s of silence before "dead".
  l.pathRto(1100ms);
  EXPECT_EQ(l.deadAfter(), 1100ms * PeerLiveness::kRtoMultiple);
  EXPECT_FALSE(l.expired(t0 + 8s));
  EXPECT_TRUE(l.expired(t0 + 9s));
  // Anything heard counts as alive.
  l.heard(t0 + 8s);
  EXPECT_FALSE(l.expired(t0 + 9s));
  // A new connection keeps what was learnt about the path.
  l.restart(t0 + 20s);
  EXPECT_EQ(l.deadAfter(), 8800ms);
}

TEST(Liveness, ASilentPeerOnAPathThatStillCarriesOurDataGetsLongerThanADeadLink) {
  auto t0 = Clock::time_point{} + 100s;
  PeerLiveness l(1000ms, 5000ms, t0);
  // Nothing heard for 6 s, and nothing of ours acknowledged since t0: a dead link.
  EXPECT_TRUE(l.expired(t0 + 6s));
  // The same silence while TCP's ACKs keep arriving: a lossy path (or a stuck peer).
  l.pathAcked(t0 + 5500ms);
  EXPECT_FALSE(l.expired(t0 + 6s));
  EXPECT_FALSE(l.expired(t0 + 10s));
  l.pathAcked(t0 + 29s);
  EXPECT_FALSE(l.expired(t0 + 30s));
  EXPECT_TRUE(l.expired(t0 + 31s));  // 6 x the 5 s: a peer that never answers is stuck
  // ACKs that stopped: the path went down, and the short timeout applies again.
  PeerLiveness m(1000ms, 5000ms, t0);
  m.pathAcked(t0 + 1s);
  EXPECT_FALSE(m.expired(t0 + 5500ms));
  EXPECT_TRUE(m.expired(t0 + 6100ms));
  // A new connection forgets the old one's ACKs.
  m.pathAcked(t0 + 6s);
  m.restart(t0 + 7s);
  EXPECT_TRUE(m.expired(t0 + 12100ms));
}
