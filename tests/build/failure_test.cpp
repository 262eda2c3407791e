// Builds that fail — a wrong base checksum, a failing script, SIGTERM in the middle, a full work
// dir — report the step, the exit code and the last output lines, publish nothing, and leave
// no mount, loop device, helper process or work directory behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "agent-build/disk/qemu_img.h"
#include "agent-build/runner/build_task_runner.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build;
using namespace imgpipe::build::test;

namespace {

std::string definitionWith(const FixtureBase& base, const std::string& sha256,
                           const std::string& rest) {
  return "name: imgpipe-test-fail\nbase:\n  path: " + base.file.string() + "\n  sha256: " + sha256 +
         "\ndisk: {compression: zstd}\nvalidation: {require_qemu_guest_agent: false}\n" + rest;
}

void expectNothingLeft(const TestArea& area) {
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
  for (const auto& e : fs::recursive_directory_iterator(area.out()))
    ADD_FAILURE() << "output left behind: " << e.path();
  for (const auto& e : fs::directory_iterator(area.work()))
    ADD_FAILURE() << "work dir left behind: " << e.path();
}

}  // namespace

TEST(BuildFailure, WrongBaseChecksumIsRefusedBeforeAnythingHappens) {
  const auto& base = fixtureBase();
  TestArea area("checksum");
  BuildTaskRunner runner(area.config(),
                         [](const BuildOutput&, const OutputFile&) -> agent::ArtifactInfo {
                           throw std::logic_error("published a failed build");
                         });
  RecordingReporter reporter;
  const std::string wrong(64, 'a');
  runner.run(buildTask("job-checksum", definitionWith(base, wrong, "")), reporter, {});
  ASSERT_TRUE(reporter.failure());
  EXPECT_EQ(reporter.failure()->step, "fetch_base");
  EXPECT_NE(reporter.failure()->message.find("base checksum mismatch: " + base.file.string() +
                                             " has sha256 " + base.sha256 +
                                             ", the definition expects " + wrong),
            std::string::npos)
      << reporter.failure()->message;
  EXPECT_FALSE(reporter.failure()->retryable);
  expectNothingLeft(area);
}

TEST(BuildFailure, FailingScriptReportsStepExitCodeAndLastLines) {
  const auto& base = fixtureBase();
  TestArea area("script");
  BuildTaskRunner runner(area.config(),
                         [](const BuildOutput&, const OutputFile&) -> agent::ArtifactInfo {
                           throw std::logic_error("published a failed build");
                         });
  RecordingReporter reporter;
  runner.run(buildTask("job-script", definitionWith(base, base.sha256, R"(scripts:
  - name: fine
    run: "echo fine"
  - name: explode
    run: |
      #!/bin/sh
      echo "preparing the explosion"
      echo "boom: something went wrong" >&2
      exit 7
  - name: never
    run: "touch /never"
)")),
             reporter, {});
  ASSERT_TRUE(reporter.failure());
  const auto f = *reporter.failure();
  EXPECT_EQ(f.step, "scripts");
  EXPECT_EQ(f.exitCode, 7);
  EXPECT_EQ(f.message, "command failed: script 'explode' (exit code 7)");
  ASSERT_GE(f.outputTail.size(), 2u);
  EXPECT_EQ(f.outputTail[f.outputTail.size() - 2], "preparing the explosion");
  EXPECT_EQ(f.outputTail.back(), "boom: something went wrong");
  EXPECT_FALSE(reporter.result());
  expectNothingLeft(area);
}

TEST(BuildFailure, SigtermMidBuildUnwindsEverything) {
  const auto& base = fixtureBase();
  TestArea area("sigterm");
  auto def = area.writeDefinition(
      "sigterm.yaml", definitionWith(base, base.sha256, "packages: {install: [tree]}\n"));
  auto config = area.writeConfig(area.config());
  bool inPackages = false;
  SubprocessOptions o;
  o.argv = {agentBinary().string(), "build",      def.string(),         "--config",
            config.string(),        "--work-dir", area.work().string(), "--out",
            area.out().string()};
  std::mutex mutex;
  std::vector<std::string> lines;
  o.onLine = [&](std::string_view l) {
    std::lock_guard lock(mutex);
    lines.emplace_back(l);
    if (l.find("apt-get update") != std::string_view::npos) inPackages = true;
  };
  Subprocess cli(o);
  std::jthread killer([&](std::stop_token stop) {
    for (int i = 0; i < 1200 && !stop.stop_requested(); ++i) {
      {
        std::lock_guard lock(mutex);
        if (inPackages) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // apt is running in the image's sandbox now, with the disk attached, mounted and bind-mounted.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    ::kill(cli.pid(), SIGTERM);
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = cli.wait();
  killer.join();
  std::string all;
  for (const auto& l : lines)
    all += l + "\n";
  EXPECT_TRUE(inPackages) << all;
  EXPECT_EQ(r.exitCode, 3) << all;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::minutes(10));
  EXPECT_NE(all.find("build failed in step packages"), std::string::npos) << all;
  EXPECT_NE(all.find("stopped"), std::string::npos) << all;
  std::printf("%s", all.c_str());
  expectNothingLeft(area);
}

TEST(BuildFailure, FullWorkDirIsNamedAndCleanedUp) {
  const auto& base = fixtureBase();
  TestArea area("diskfull");
  // A work dir on a tmpfs just larger than the base's data: the raw copy fits, the script that
  // writes 1 GiB into the image does not. The tmpfs lives in a private mount namespace of the
  // command that runs the build, so it goes away with it.
  ExecContext exec;
  auto data = allocatedBytes(base.file);
  auto map = checkCommand({"qemu-img", "map", "--output=json", base.file.string()});
  std::uint64_t raw = 0;
  for (const auto& e : nlohmann::json::parse(map))
    if (e.value("data", false) && !e.value("zero", false)) raw += e["length"].get<std::uint64_t>();
  (void)data;
  const std::uint64_t tmpfsSize = raw + (300ull << 20);
  auto cfg = area.config();
  cfg.minFreeSpace = 100ull << 20;
  auto config = area.writeConfig(cfg);
  auto def = area.writeDefinition("full.yaml", definitionWith(base, base.sha256, R"(scripts:
  - name: fill
    run: |
      #!/bin/sh
      set -e
      dd if=/dev/zero of=/var/tmp/fill bs=1M count=1024 conv=fsync
)"));
  const std::string script = "mount -t tmpfs -o size=" + std::to_string(tmpfsSize) +
                             " imgpipe-test-full " + area.work().string() + " && exec " +
                             agentBinary().string() + " build " + def.string() + " --config " +
                             config.string() + " --work-dir " + area.work().string() + " --out " +
                             area.out().string();
  SubprocessOptions o;
  o.argv = {"unshare", "--mount", "--propagation", "private", "sh", "-c", script};
  std::string all;
  o.onLine = [&](std::string_view l) { all += std::string(l) + "\n"; };
  o.timeout = std::chrono::minutes(15);
  auto r = runCommand(o);
  EXPECT_EQ(r.exitCode, 1) << all;
  EXPECT_NE(all.find("build failed in step scripts"), std::string::npos) << all;
  EXPECT_NE(all.find("is out of space"), std::string::npos) << all;
  std::printf("%s", all.c_str());
  expectNothingLeft(area);
}
