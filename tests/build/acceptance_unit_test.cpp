// The acceptance boot's pure parts: the results channel's parser, the console tail, the seed's
// documents, firmware selection, and the flat check list `imgpipe show` gets.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "agent-build/boot/acceptance.h"
#include "agent-build/boot/acceptance_boot.h"
#include "agent-build/boot/nocloud_seed.h"
#include "agent-build/runner/validation_checks.h"

using namespace imgpipe;
using namespace imgpipe::build;

TEST(AcceptanceBoot, ParsesResultLinesAndIgnoresAHalfWrittenOne) {
  auto r = parseGuestResults(
      "{\"started\": true, \"uptime_s\": 20.5}\n"
      "{\"check\": \"cloud-init done\", \"detail\": \"status: done\", \"ok\": true}\n"
      "garbage from a reconnect\n"
      "{\"check\": \"no failed units\", \"detail\": \"x.service (exit-code)\", \"ok\": false}\n"
      "{\"done\": true, \"uptime_s\": 41.0}\n"
      "{\"check\": \"half");
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(r.done);
  EXPECT_DOUBLE_EQ(r.uptimeAtDone, 41.0);
  ASSERT_EQ(r.checks.size(), 2u);
  EXPECT_EQ(r.checks[1].check, "no failed units");
  EXPECT_FALSE(r.checks[1].ok);
  EXPECT_FALSE(parseGuestResults("{\"started\": true}\n{\"done\": tr").done);
}

TEST(AcceptanceBoot, ConsoleTailDropsEscapesAndKeepsTheLastLines) {
  std::string text;
  for (int i = 0; i < 50; ++i)
    text += "[\x1b[0;32m  OK  \x1b[0m] line " + std::to_string(i) + "\r\n";
  auto tail = consoleTail(text, 3);
  EXPECT_EQ(tail, "\n  | [  OK  ] line 47\n  | [  OK  ] line 48\n  | [  OK  ] line 49");
}

TEST(AcceptanceBoot, SeedCarriesTheScriptAndQueuesItAfterCloudFinal) {
  auto seed = makeSeed("iid-x", "imgpipe-0123abcd", {{"hostname", "imgpipe-0123abcd"}});
  auto meta = YAML::Load(seed.metaData);
  EXPECT_EQ(meta["instance-id"].as<std::string>(), "iid-x");
  EXPECT_EQ(meta["local-hostname"].as<std::string>(), "imgpipe-0123abcd");
  ASSERT_EQ(seed.userData.rfind("#cloud-config\n", 0), 0u);
  auto user = YAML::Load(seed.userData);  // JSON is YAML: what cloud-init will read
  ASSERT_EQ(user["write_files"].size(), 2u);
  EXPECT_EQ(user["write_files"][0]["path"].as<std::string>(), "/run/imgpipe-acceptance/checks.py");
  EXPECT_EQ(user["write_files"][0]["encoding"].as<std::string>(), "b64");
  auto cmd = user["bootcmd"][0];
  EXPECT_EQ(cmd[0].as<std::string>(), "systemd-run");
  bool after = false;
  for (const auto& a : cmd)
    after |= a.as<std::string>() == "--property=After=cloud-final.service";
  EXPECT_TRUE(after);
}

TEST(AcceptanceBoot, FirmwareAutoAddsUefiOnlyWithAnEsp) {
  using F = definition::BootFirmware;
  EXPECT_EQ(firmwaresFor(F::auto_, false), std::vector<Firmware>{Firmware::bios});
  EXPECT_EQ(firmwaresFor(F::auto_, true), (std::vector<Firmware>{Firmware::bios, Firmware::uefi}));
  EXPECT_EQ(firmwaresFor(F::uefi, false), std::vector<Firmware>{Firmware::uefi});
  EXPECT_EQ(firmwaresFor(F::both, false), (std::vector<Firmware>{Firmware::bios, Firmware::uefi}));
}

TEST(AcceptanceBoot, FailureNamesTheCheckAndShowsTheConsole) {
  BootRun ok{.method = "qemu",
             .firmware = "bios",
             .accel = "tcg",
             .seconds = 50,
             .checks = {{"cloud-init done", true, "status: done"}}};
  BootRun bad{.method = "qemu",
              .firmware = "uefi",
              .accel = "tcg",
              .seconds = 60,
              .checks = {{"cloud-init done", true, ""}, {"no failed units", false, "x.service"}},
              .consoleTail = "\n  | last line",
              .consoleLog = "/w/console-uefi.log"};
  EXPECT_TRUE(ok.passed());
  EXPECT_FALSE(bad.passed());
  auto msg = bootTestFailure({ok, bad});
  EXPECT_EQ(msg,
            "acceptance boot (uefi) failed: 1 of 2 checks failed\n  no failed units: x.service\n"
            "last lines of the guest's console (console-uefi.log):\n  | last line");
  auto j = bootTestJson({ok, bad});
  EXPECT_FALSE(j["passed"]);
  EXPECT_DOUBLE_EQ(j["seconds"].get<double>(), 110);
  EXPECT_EQ(j["boots"][1]["checks"][1]["check"], "no failed units");
  // A boot without any result is a failure even with no failed check.
  EXPECT_FALSE((BootRun{.method = "nspawn", .error = "no results"}).passed());

  auto flat = checksFromValidation(
      {{"checks", {{{"check", "e2fsck -n clean"}, {"ok", true}}}}, {"boot_test", j}});
  ASSERT_EQ(flat.size(), 4u);
  EXPECT_EQ(flat[0].group, "validate");
  EXPECT_EQ(flat[3].group, "boot uefi");
  EXPECT_EQ(flat[3].check, "no failed units");
  EXPECT_FALSE(flat[3].ok);
}
