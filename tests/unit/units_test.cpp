#include "common/units.h"

#include <gtest/gtest.h>

#include "common/error.h"

using namespace imgpipe;

TEST(Units, ParsesSizesWithBinaryUnits) {
  EXPECT_EQ(parseSize("4096"), 4096u);
  EXPECT_EQ(parseSize("10G"), 10ull << 30);
  EXPECT_EQ(parseSize("512M"), 512ull << 20);
  EXPECT_EQ(parseSize("1.5GiB"), 3ull << 29);
  EXPECT_THROW(parseSize("ten"), Error);
  EXPECT_THROW(parseSize("10Q"), Error);
}

TEST(Units, ParsesDurationsAndRates) {
  EXPECT_EQ(parseDuration("500ms").count(), 500);
  EXPECT_EQ(parseDuration("2m").count(), 120000);
  EXPECT_EQ(parseDuration("3").count(), 3000);
  EXPECT_EQ(parseRate("40mbit"), 5'000'000u);
  EXPECT_EQ(parseRate("0"), 0u);
  EXPECT_THROW(parseRate("40 furlongs"), Error);
}

TEST(Units, FormatsForHumans) {
  EXPECT_EQ(formatBytes(512), "512 B");
  EXPECT_EQ(formatBytes(3ull << 29), "1.5 GiB");
  EXPECT_EQ(formatDuration(std::chrono::milliseconds(65'000)), "1m05s");
}
