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
