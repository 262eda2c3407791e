// The parent's decoder of the build child's event lines: typed, never throwing, never casting a
// number it cannot hold.
#include "agent-build/runner/child_events.h"

#include <gtest/gtest.h>

using namespace imgpipe::build;

namespace {

std::string rejection(const std::string& json) {
  auto r = decodeChildEvent("@imgpipe " + json);
  return r.index() == 1 ? std::get<1>(r) : "";
}

TEST(ChildEvents, ProgressCountsAreWholeNumbersThatFit) {
  auto ok = decodeChildEvent(
      R"(@imgpipe {"event":"progress","step":"compact","done":5,"total":18446744073709551615})");
  ASSERT_EQ(ok.index(), 0u) << std::get<1>(ok);
  const auto& p = std::get<ProgressEvent>(std::get<0>(ok));
  EXPECT_EQ(p.done, 5u);
  EXPECT_EQ(p.total, 18446744073709551615u);
  // Found by fuzz_build_events: a float out of range was cast (undefined behaviour).
  EXPECT_NE(rejection(R"({"event":"progress","total":2.22222e+26})")
                .find("'total' is not a whole "
                      "number in range"),
            std::string::npos);
  EXPECT_NE(rejection(R"({"event":"progress","done":1.5})").find("'done'"), std::string::npos);
  EXPECT_NE(rejection(R"({"event":"progress","rate":-1})").find("'rate'"), std::string::npos);
  EXPECT_NE(rejection(R"({"event":"failed","exit_code":4294967296})").find("'exit_code'"),
            std::string::npos);
  EXPECT_NE(rejection(R"({"event":"failed","exit_code":18446744073709551615})").find("'exit_code'"),
            std::string::npos);
  auto failed = decodeChildEvent(R"(@imgpipe {"event":"failed","exit_code":-2,"message":"x"})");
  ASSERT_EQ(failed.index(), 0u);
  EXPECT_EQ(std::get<FailedEvent>(std::get<0>(failed)).exitCode, -2);
}

}  // namespace
