// The transfer plane end to end: real imgpipe-transfer processes in real network namespaces
// joined by tbf-limited veth links (tests/support/netns.h).
#include <signal.h>

#include <thread>

#include "tests/transfer/transfer_fixture.h"

namespace imgpipe::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(TransferNetTest, FullTransferThroughRelayIsByteIdentical) {
  net_->addHost("build");
  net_->addHost("relay");
  net_->addHost("ctrl");
  net_->link("build", "relay", {"200mbit"});
  net_->link("relay", "ctrl", {"200mbit"});
  auto file = makeFile("image", 24 << 20, 1);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  auto relayd = relay("relay", "build", "ctrl", a, {"ctrl"});
  auto r = fetch("ctrl", "relay", a);
  ASSERT_EQ(r.command.exitCode, 0) << r.tail() << relayd->output();
  EXPECT_EQ(r.via, "full");
  EXPECT_TRUE(sameContent(file, artifactData("ctrl", a)));
  EXPECT_TRUE(relayd->waitForLog("fetched", 10s)) << relayd->output();
  EXPECT_TRUE(sameContent(file, artifactData("relay", a)));
}

}  // namespace
}  // namespace imgpipe::testing
