// The one rate and ETA of every progress report (common/rate_meter.h), with time passed in.
#include "common/rate_meter.h"

#include <gtest/gtest.h>

using namespace imgpipe;
using namespace std::chrono_literals;

TEST(RateMeter, WeighsRecentSamplesAndGivesAnEta) {
  RateMeter m;
  const auto t0 = RateMeter::Clock::time_point{} + 1h;
  m.sample(0, t0);
  EXPECT_EQ(m.perSecond(), 0u);
  EXPECT_EQ(m.etaSeconds(0, 100), 0u) << "no rate, no ETA";
  m.sample(1000, t0 + 1s);
  EXPECT_EQ(m.perSecond(), 1000u);
  EXPECT_EQ(m.etaSeconds(1000, 11000), 10u);
  m.sample(1100, t0 + 1100ms);  // too close to the last: ignored
  EXPECT_EQ(m.perSecond(), 1000u);
  m.sample(1000 + 3000, t0 + 2s);  // 3000/s now: 0.7 * 1000 + 0.3 * 3000
  EXPECT_EQ(m.perSecond(), 1600u);
  m.sample(4000, t0 + 3s);  // a stalled second lowers it without zeroing it
  EXPECT_EQ(m.perSecond(), 1120u);
  EXPECT_EQ(m.etaSeconds(4000, 4000), 0u);
  m.reset();
  EXPECT_EQ(m.perSecond(), 0u);
}
