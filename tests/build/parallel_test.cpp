// Two builds at once on one agent: each gets its own work dir, loop device and mount namespace,
// both succeed, and nothing is left behind.
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "agent-build/runner/build_task_runner.h"
#include "common/file_util.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build;
using namespace imgpipe::build::test;

namespace {

std::string definitionText(const FixtureBase& base, const std::string& name,
                           const std::string& package) {
  return "name: " + name + "\nbase:\n  path: " + base.file.string() + "\n  sha256: " + base.sha256 +
         "\ndisk: {size: 3G, compression: zstd}\npackages: {install: [" + package +
         "]}\nfiles: [{path: /etc/which-build, content: " + name +
         "}]\nvalidation: {require_qemu_guest_agent: false, expect_packages: [" + package + "]}\n";
}

}  // namespace

TEST(BuildParallel, TwoBuildsAtOnceNeverShareADevice) {
  const auto& base = fixtureBase();
  TestArea area("parallel");
  std::mutex mutex;
  std::vector<BuildOutput> outputs;
  BuildTaskRunner runner(area.config(), [&](const BuildOutput& out, const OutputFile&) {
    std::lock_guard lock(mutex);
    outputs.push_back(out);
    return artifactFromOutput(out);
  });
  RecordingReporter a, b;
  const auto start = std::chrono::steady_clock::now();
  std::thread ta([&] {
    runner.run(buildTask("job-a", definitionText(base, "imgpipe-test-a", "tree")), a, {});
  });
  std::thread tb(
      [&] { runner.run(buildTask("job-b", definitionText(base, "imgpipe-test-b", "jq")), b, {}); });
  ta.join();
  tb.join();
  std::printf("two parallel builds took %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  ASSERT_FALSE(a.failure()) << a.failure()->step << ": " << a.failure()->message;
  ASSERT_FALSE(b.failure()) << b.failure()->step << ": " << b.failure()->message;
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_NE(outputs[0].sha256Hex, outputs[1].sha256Hex);

  // Their build logs name the loop device each attached: different ones, both detached.
  std::set<std::string> loops;
  std::regex re("attached (/dev/loop[0-9]+)");
  for (const auto& o : outputs) {
    std::smatch m;
    auto log = readFile(o.buildLog);
    ASSERT_TRUE(std::regex_search(log, m, re)) << o.buildLog;
    loops.insert(m[1]);
  }
  EXPECT_EQ(loops.size(), 2u);
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
  EXPECT_TRUE(fs::is_empty(area.work()));
}
