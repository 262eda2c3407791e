// The daemon's config: the deployed example, with real keys, passes `--check-config`; a typo in
// the build: section is refused with its position, through the agent's common main.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "common/file_util.h"
#include "common/net/curve_keys.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
namespace fs = std::filesystem;

namespace {

CommandResult checkConfig(const fs::path& config) {
  SubprocessOptions o;
  o.argv = {build::test::agentBinary().string(), "--config", config.string(), "--check-config"};
  o.captureStdout = true;
  return runCommand(o);
}

}  // namespace

TEST(AgentConfig, DeployedExampleChecksOutAndTyposAreRefused) {
  const char* src = std::getenv("IMGPIPE_SOURCE_DIR");
  auto example =
      readFile(fs::path(src ? src : IMGPIPE_TEST_SOURCE_DIR) / "deploy/config/agent-build.yaml");
  TempDir dir;
  net::writeKeyPair(net::generateKeyPair("build-1"), dir.path());
  net::writeKeyPair(net::generateKeyPair("coordinator"), dir.path());
  example =
      std::regex_replace(example, std::regex("/etc/imgpipe/keys/"), dir.path().string() + "/");
  auto good = dir.path() / "agent-build.yaml";
  writeFileAtomic(good, example);
  auto r = checkConfig(good);
  std::string tail;
  for (const auto& l : r.tail)
    tail += l + "\n";
  EXPECT_EQ(r.exitCode, 0) << tail;
  EXPECT_NE(r.stdoutText.find(": OK"), std::string::npos) << r.stdoutText << tail;

  auto bad = dir.path() / "typo.yaml";
  writeFileAtomic(bad, std::regex_replace(example, std::regex("  keep_failed_work_dir:"),
                                          "  keep_failed_workdir:"));
  r = checkConfig(bad);
  EXPECT_EQ(r.exitCode, 2);
  tail.clear();
  for (const auto& l : r.tail)
    tail += l + "\n";
  EXPECT_NE(tail.find("build: unknown key 'keep_failed_workdir'"), std::string::npos) << tail;
}
