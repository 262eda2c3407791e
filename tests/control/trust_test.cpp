// Trust boundaries of the control plane, attacked by real processes holding real keys: a
// hostile build agent reporting identifiers that would be paths, and a key replaced while its
// agent is mid-job (issue 9).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "common/file_util.h"
#include "common/net/curve_keys.h"
#include "tests/support/cluster.h"

using namespace imgpipe;
using namespace imgpipe::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const char* kTrustTopology = R"(
heartbeat: {interval: 500ms, liveness: 4}
build_grace: 30s
retry_delay: 1s
topology:
  sites: [{name: site-a, controller: ctrl-a}]
  links:
    - {from: build, to: relay-1}
    - {from: relay-1, to: ctrl-a}
  default_targets: [site-a]
)";

const char* kTrustAgent =
    "heartbeat: {interval: 500ms, liveness: 4, reconnect_initial: 200ms, reconnect_max: 1s}\n";

// Every file and directory under `root` except logs and the coordinator's database, which
// change by design: what a hostile report must not add to, move or remove.
std::set<std::string> listing(const fs::path& root) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const auto rel = fs::relative(it->path(), root).string();
    // The hostile agent's own key and state are its to change.
    if (rel.starts_with("coordinator-state") || rel.ends_with(".log") || rel.ends_with(".yaml") ||
        rel.starts_with("state-build-1") || rel.starts_with("keys/build-1"))
      continue;
    out.insert(rel);
  }
  return out;
}

std::string eventsText(Cluster& c, const std::string& job) {
  std::string all;
  for (const auto& e : c.cliJson({"events", job}))
    all += e.value("message", "") + "\n";
  return all;
}

class TrustTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << c.logs();
  }
  std::string definition(const std::string& name = "demo") {
    return c.writeDefinition(name + ".yaml", "name: " + name + "\nbase: {path: base.qcow2}\n");
  }
  Cluster c;
};

}  // namespace

TEST_F(TrustTest, AHostileBuildAgentsIdentifiersAreRefusedNamingTheFieldAndNothingIsForwarded) {
  c.setCoordinatorExtra(kTrustTopology);
  c.startCoordinator();
  // A real relay agent with a real store: what a forwarded id would have reached.
  c.addKey("relay-1", "relay");
  const int relayPort = freePort();
  c.startAgent("relay-1", {(buildDir() / "bin/imgpipe-agent-relay").string()},
               c.commonAgentConfig("relay-1") + kTrustAgent +
                   "transfer: {listen: 'tcp://127.0.0.1:" + std::to_string(relayPort) + "'}\n");
  c.startSimAgent("ctrl-a", "glance", std::string(kTrustAgent));
  ASSERT_TRUE(
      waitUntil([&] { return c.agentsOnline()["relay-1"] && c.agentsOnline()["ctrl-a"]; }, 15s))
      << c.logs();
  const auto before = listing(c.dir());

  struct Case {
    std::string field, value, expect;
  };
  const std::string hex(64, 'a');
  const std::vector<Case> cases = {
      {"id", "delta-a-b/../../../victim", "taskEvent.completed.artifact.id"},
      {"id", "../../../victim", "taskEvent.completed.artifact.id"},
      {"id", hex.substr(0, 30) + "\\0" + hex.substr(0, 33), "taskEvent.completed.artifact.id"},
      {"id", "<long>", "taskEvent.completed.artifact.id"},
      {"id", std::string(64, 'Z'), "taskEvent.completed.artifact.id"},
      {"imageName", "q/../../../vic", "taskEvent.completed.artifact.imageName"},
      {"imageVersion", "../../x", "taskEvent.completed.artifact.imageVersion"},
      {"manifestDigest", "/etc/passwd", "taskEvent.completed.artifact.manifestDigest"},
      {"imageVersion", "9.9.9", "version '9.9.9', the job's version is"},
  };
  int job = 0;
  for (const auto& k : cases) {
    SCOPED_TRACE(k.field + " = " + k.value.substr(0, 80));
    c.startSimAgent("build-1", "build",
                    std::string(kTrustAgent) + "sim: {build: 200ms, hostile: {field: " + k.field +
                        ", value: \"" + k.value + "\"}}\n");
    ASSERT_TRUE(waitUntil([&] { return c.agentsOnline()["build-1"]; }, 10s));
    auto r = c.cli({"submit", definition()});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const std::string id = std::to_string(++job);
    ASSERT_TRUE(waitUntil([&] { return c.jobState(id) == "failed"; }, 20s)) << c.jobState(id);
    auto detail = c.cliJson({"show", id});
    EXPECT_EQ(detail["steps"].size(), 1u) << "no hop was planned: " << detail.dump();
    const auto events = eventsText(c, id);
    EXPECT_NE(events.find(k.expect), std::string::npos) << events;
    EXPECT_EQ(events.find("delivery plan"), std::string::npos) << events;
    c.agent("build-1").stop();
  }
  // Nothing reached the relay, and nothing outside any store changed.
  EXPECT_EQ(c.agent("relay-1").log().find("assigned"), std::string::npos);
  EXPECT_EQ(listing(c.dir()), before);
  for (const auto& p :
       {c.dir().parent_path() / "victim", c.dir() / "victim", c.dir() / "state-relay-1" / "victim"})
    EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_TRUE(c.agentsOnline()["relay-1"]) << "the relay is untouched";
}

TEST_F(TrustTest, AKeyReplacedMidJobEndsItsSessionItsLateResultIsRefusedAndTheJobEndsDone) {
  c.setCoordinatorExtra(kTrustTopology);
  c.startCoordinator();
  // The old process goes on talking after it is refused, as a stolen key's holder would.
  c.startSimAgent("build-1", "build",
                  std::string(kTrustAgent) + "sim: {build: 8s, ignore_refusals: true}\n");
  c.startSimAgent("relay-1", "relay", std::string(kTrustAgent) + "sim: {fetch: 300ms}\n");
  c.startSimAgent("ctrl-a", "glance", std::string(kTrustAgent) + "sim: {register: 200ms}\n");
  ASSERT_TRUE(waitUntil(
      [&] {
        auto a = c.agentsOnline();
        return a["build-1"] && a["relay-1"] && a["ctrl-a"];
      },
      15s));
  auto r = c.cli({"submit", definition()});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  ASSERT_TRUE(waitUntil([&] { return c.jobState("1") == "building"; }, 10s));

  // The operator rotates build-1's key: a new pair, the line in authorized_keys replaced.
  auto fresh = net::generateKeyPair("build-1");
  const fs::path newKeys = c.dir() / "keys-new";
  net::writeKeyPair(fresh, newKeys);
  std::string text = readFile(c.dir() / "authorized_keys"), out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out += (line.starts_with("build-1 ") ? "build-1 build " + fresh.publicKey : line) + "\n";
  const auto rotated = std::chrono::steady_clock::now();
  writeFileAtomic(c.dir() / "authorized_keys", out);

  // Within 5 s its session is over and the build is back in the queue.
  ASSERT_TRUE(
      waitUntil([&] { return eventsText(c, "1").find("re-queued") != std::string::npos; }, 5s))
      << eventsText(c, "1");
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - rotated).count();
  EXPECT_LE(secs, 5.0);
  std::cout << "[ measured ] session of the replaced key ended " << secs << " s after the edit\n";
  EXPECT_NE(eventsText(c, "1").find("its key was replaced in authorized_keys"), std::string::npos);

  // The agent comes back with its new key and gets the job.
  std::string config = c.commonAgentConfig("build-1");
  config.replace(config.find((c.dir() / "keys" / "build-1.key").string()),
                 (c.dir() / "keys" / "build-1.key").string().size(),
                 (newKeys / "build-1.key").string());
  c.startAgent("build-1-rotated", {(buildDir() / "bin/imgpipe-sim-agent").string(), "build"},
               config + kTrustAgent + "sim: {build: 500ms}\n");
  ASSERT_TRUE(waitUntil([&] { return c.jobState("1") == "done"; }, 30s)) << c.jobState("1");
  auto job = c.cliJson({"show", "1"});
  EXPECT_EQ(job["steps"][0]["attempts"], 2) << job.dump();
  EXPECT_NE(eventsText(c, "1").find("assigned to build-1 (attempt 2)"), std::string::npos);

  // The old process finished its build (8 s) and reported it: refused.
  EXPECT_TRUE(c.coordinator().waitForLog(
      "refused the result of task 1.0.1 from build-1 (build): its key is no longer authorized",
      15s))
      << c.coordinator().log();
  EXPECT_TRUE(c.agent("build-1").running()) << "it kept talking, as an attacker would";
  EXPECT_EQ(c.jobState("1"), "done");
  EXPECT_EQ(job["steps"][0]["attempts"], 2);
}

// Issue 23: an operator key taken out of authorized_keys ends its open watches with its session,
// as it ends an agent's: the watching CLI is told why and exits "not authorized", and gets no
// update of the job after that.
TEST_F(TrustTest, ARevokedOperatorKeysWatchEndsWithItsSession) {
  c.setCoordinatorExtra(kTrustTopology);
  c.startCoordinator();
  c.startSimAgent("build-1", "build", std::string(kTrustAgent) + "sim: {build: 20s}\n");
  ASSERT_TRUE(waitUntil([&] { return c.agentsOnline()["build-1"]; }, 15s));
  auto r = c.cli({"submit", definition()});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  ASSERT_TRUE(waitUntil([&] { return c.jobState("1") == "building"; }, 10s));
  Daemon watch({(buildDir() / "bin/imgpipe").string(), "--config", (c.dir() / "cli.yaml").string(),
                "watch", "1"},
               c.dir() / "watch.log");
  ASSERT_TRUE(watch.waitForLog("build", 10s)) << watch.log();
  EXPECT_TRUE(watch.running());

  std::string text = readFile(c.dir() / "authorized_keys"), out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.starts_with("ops ")) out += line + "\n";
  const auto revoked = std::chrono::steady_clock::now();
  writeFileAtomic(c.dir() / "authorized_keys", out);
  const int code = watch.waitExit(10s);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - revoked).count();
  EXPECT_EQ(code, 4) << watch.log();
  EXPECT_NE(watch.log().find("its key was removed from authorized_keys"), std::string::npos)
      << watch.log();
  EXPECT_LE(secs, 5.0);
  std::cout << "[ measured ] the revoked operator's watch ended " << secs << " s after the edit\n";
}
