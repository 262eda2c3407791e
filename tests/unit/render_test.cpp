// `imgpipe show`: a build step's checks (offline validation and acceptance boot) are listed
// with group, check, result and detail, failed ones first; `--json` carries them per step.
#include <capnp/message.h>
#include <gtest/gtest.h>

#include <sstream>

#include "coordinator/cli/render.h"

using namespace imgpipe;

TEST(Render, ShowListsABuildsChecksFailedFirst) {
  capnp::MallocMessageBuilder msg;
  auto d = msg.initRoot<proto::JobDetail>();
  d.initSummary().setId("7");
  auto steps = d.initSteps(1);
  steps[0].setName("build");
  auto checks = steps[0].initChecks(3);
  checks[0].setGroup("validate");
  checks[0].setCheck("e2fsck -n clean");
  checks[0].setOk(true);
  checks[1].setGroup("boot bios");
  checks[1].setCheck("no failed units");
  checks[1].setDetail("cloud-config.service (exit-code)");
  checks[2].setGroup("boot nspawn");
  checks[2].setCheck("guest agent ping");
  checks[2].setOk(true);
  checks[2].setSkipped(true);
  checks[2].setDetail("no virtio-serial channel in a container");

  std::ostringstream out;
  cli::printJobDetail(out, d.asReader());
  const auto text = out.str();
  EXPECT_NE(text.find("build checks: 1 ok, 1 failed, 1 skipped"), std::string::npos) << text;
  auto failed = text.find("no failed units");
  auto ok = text.find("e2fsck -n clean");
  ASSERT_NE(failed, std::string::npos);
  ASSERT_NE(ok, std::string::npos);
  EXPECT_LT(failed, ok);  // failed first
  EXPECT_NE(text.find("FAILED"), std::string::npos);
  EXPECT_NE(text.find("cloud-config.service (exit-code)"), std::string::npos);
  EXPECT_NE(text.find("skipped"), std::string::npos);

  auto j = cli::toJson(d.asReader());
  ASSERT_EQ(j["steps"][0]["checks"].size(), 3u);
  EXPECT_EQ(j["steps"][0]["checks"][1]["check"], "no failed units");
  EXPECT_FALSE(j["steps"][0]["checks"][1]["ok"]);
  EXPECT_TRUE(j["steps"][0]["checks"][2]["skipped"]);
}
