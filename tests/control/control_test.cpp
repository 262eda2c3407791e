// The control plane with real processes on loopback: a coordinator, agents whose work is
// simulated (tests/support/sim_agent.cpp), and the imgpipe CLI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <random>
#include <thread>
#include <zmq.hpp>

#include "common/net/curve_keys.h"
#include "common/net/zap_handler.h"
#include "protocol/codec.h"
#include "tests/support/cluster.h"

using namespace imgpipe;
using namespace imgpipe::test;
using namespace std::chrono_literals;

namespace {

const char* kTopology = R"(
heartbeat: {interval: 500ms, liveness: 4}
build_grace: 3s
retry_delay: 1s
topology:
  sites: [{name: site-a, controller: ctrl-a}]
  links:
    - {from: build, to: relay-1}
    - {from: relay-1, to: ctrl-a}
  default_targets: [site-a]
)";

const char* kFastAgent =
    "heartbeat: {interval: 500ms, liveness: 4, reconnect_initial: 200ms, reconnect_max: 1s}\n";

std::string simTimes(const std::string& build, const std::string& fetch = "500ms") {
  return "sim: {build: " + build + ", fetch: " + fetch + ", register: 200ms}\n";
}

class ControlTest : public ::testing::Test {
 protected:
  void startAll(const std::string& buildTime = "1s") {
    c.setCoordinatorExtra(kTopology);
    c.startCoordinator();
    c.startSimAgent("build-1", "build", std::string(kFastAgent) + simTimes(buildTime));
    c.startSimAgent("relay-1", "relay", std::string(kFastAgent) + simTimes(buildTime));
    c.startSimAgent("ctrl-a", "glance", std::string(kFastAgent) + simTimes(buildTime));
    ASSERT_TRUE(waitUntil(
        [&] {
          auto a = c.agentsOnline();
          return a["build-1"] && a["relay-1"] && a["ctrl-a"];
        },
        10s))
        << c.logs();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << c.logs();
  }
  std::string definition(const std::string& name = "demo") {
    return c.writeDefinition(
        name + ".yaml", "name: " + name + "\nversion: \"1.0\"\nbase: {path: /srv/base.qcow2}\n");
  }

  Cluster c;
};

TEST_F(ControlTest, RegistersAgentsAndDeliversAJob) {
  startAll();
  auto agents = c.cliJson({"agents"});
  ASSERT_EQ(agents.size(), 3u);
  for (const auto& a : agents)
    EXPECT_TRUE(a["online"].get<bool>()) << a.dump();

  auto r = c.cli({"submit", definition(), "--wait"});
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  auto job = c.cliJson({"show", "1"});
  EXPECT_EQ(job["state"], "done");
  ASSERT_EQ(job["steps"].size(), 4u);  // build, two hops, register
  EXPECT_EQ(job["steps"][1]["name"], "hop build-1 -> relay-1");
  EXPECT_EQ(job["steps"][2]["name"], "hop relay-1 -> ctrl-a");
  ASSERT_EQ(job["glance_images"].size(), 1u);
  EXPECT_EQ(job["glance_images"][0]["controller"], "ctrl-a");
  // Every job log line of the coordinator names the job.
  EXPECT_NE(c.coordinator().log().find("job=1 step=build"), std::string::npos);
}

TEST_F(ControlTest, KilledAgentShowsLostWithinFiveSecondsAndReturns) {
  startAll();
  c.agent("relay-1").kill9();
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitUntil([&] { return !c.agentsOnline()["relay-1"]; }, 5s));
  auto lostAfter = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::cout << "relay-1 shown lost after " << lostAfter.count() << " ms\n";
  EXPECT_LE(lostAfter, 5s);
  c.startSimAgent("relay-1", "relay", std::string(kFastAgent) + simTimes("1s"));
  EXPECT_TRUE(waitUntil([&] { return c.agentsOnline()["relay-1"]; }, 5s));
}

TEST_F(ControlTest, CoordinatorKilledMidJobRestartsAndTheJobEndsDone) {
  startAll("5s");
  auto submitted = c.cliJson({"submit", definition()});
  const std::string id = submitted["id"];
  ASSERT_TRUE(waitUntil([&] { return c.jobState(id) == "building"; }, 10s));
  std::this_thread::sleep_for(1s);
  c.killCoordinator();
  std::this_thread::sleep_for(1s);
  c.startCoordinator();
  auto r = c.cli({"watch", id}, false);
  EXPECT_EQ(r.exitCode, 0) << r.out << r.err;
  auto job = c.cliJson({"show", id});
  EXPECT_EQ(job["state"], "done");
  EXPECT_EQ(job["steps"][0]["attempts"], 1) << "the build ran again instead of continuing";
  auto events = c.cliJson({"events", id});
  int built = 0;
  for (const auto& e : events)
    built += e["message"].get<std::string>().rfind("built ", 0) == 0;
  EXPECT_EQ(built, 1);
}

TEST_F(ControlTest, SubmitIsDurableBeforeItIsAcknowledged) {
  c.setCoordinatorExtra(kTopology);
  c.startCoordinator();
  // No build agent: jobs stay queued. Kill -9 right after the acknowledgements.
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(c.cliJson({"submit", definition("d" + std::to_string(i))})["id"]);
  c.killCoordinator();
  c.startCoordinator();
  for (const auto& id : ids)
    EXPECT_EQ(c.jobState(id), "queued") << id;
}

TEST_F(ControlTest, UnlistedKeyIsRefused) {
  startAll();
  // A key the coordinator has never heard of: CURVE alone would accept it; ZAP must not.
  c.addKey("intruder");
  c.startAgent("intruder", {(buildDir() / "bin/imgpipe-sim-agent").string(), "build"},
               c.commonAgentConfig("intruder") + kFastAgent);
  std::this_thread::sleep_for(3s);
  EXPECT_FALSE(c.agentsOnline().count("intruder"));
  EXPECT_NE(c.agent("intruder").log().find("refused our key"), std::string::npos)
      << c.agent("intruder").log();

  // The CLI with an unlisted key gets a clear refusal and exit code 4.
  c.addKey("stranger");
  auto r = run({(buildDir() / "bin/imgpipe").string(), "--coordinator", c.coordinatorEndpoint(),
                "--coordinator-key", (c.dir() / "keys/coordinator.pub").string(), "--key",
                (c.dir() / "keys/stranger.key").string(), "--timeout", "5s", "agents"});
  EXPECT_EQ(r.exitCode, 4) << r.err;
  EXPECT_NE(r.err.find("refused this key"), std::string::npos) << r.err;
}

TEST_F(ControlTest, RelayKeyCannotRegisterAsBuild) {
  startAll();
  c.addKey("sneaky", "relay");
  auto& d = c.startAgent("sneaky", {(buildDir() / "bin/imgpipe-sim-agent").string(), "build"},
                         c.commonAgentConfig("sneaky") + kFastAgent);
  EXPECT_EQ(d.waitExit(10s), 3) << d.log();
  EXPECT_NE(d.log().find("authorized as relay"), std::string::npos) << d.log();
  EXPECT_FALSE(c.agentsOnline().count("sneaky"));
}

TEST_F(ControlTest, SecretKeyReadableByOthersIsRefusedAtStart) {
  c.setCoordinatorExtra(kTopology);
  c.startCoordinator();
  c.addKey("loose", "build");
  ::chmod((c.dir() / "keys/loose.key").c_str(), 0644);
  auto& d = c.startAgent("loose", {(buildDir() / "bin/imgpipe-sim-agent").string(), "build"},
                         c.commonAgentConfig("loose"));
  EXPECT_EQ(d.waitExit(10s), 2);
  EXPECT_NE(d.log().find("mode 0644"), std::string::npos) << d.log();

  // The coordinator refuses too.
  ::chmod((c.dir() / "keys/coordinator.key").c_str(), 0640);
  auto r = run({(buildDir() / "bin/imgpipe-coordinator").string(), "--config",
                (c.dir() / "coordinator.yaml").string()});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find("mode 0640"), std::string::npos) << r.err;
}

TEST_F(ControlTest, GarbageFramesAreDroppedCountedAndServiceContinues) {
  startAll();
  auto pub = c.addKey("fuzzer", "build");
  auto keys = net::loadSecretKey(c.dir() / "keys/fuzzer.key");
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  net::configureCurveClient(s, keys.publicKey, keys.secretKey,
                            net::loadPublicKey(c.dir() / "keys/coordinator.pub"));
  s.set(zmq::sockopt::sndhwm, 0);
  s.connect(c.coordinatorEndpoint());

  std::mt19937 rng(7);
  proto::EnvelopeBuilder valid;
  valid.body().initHello().setName(std::string(300, 'x'));
  auto validFrame = valid.frame();
  std::string validBytes(validFrame.data<char>(), validFrame.size());
  int sent = 0, surelyInvalid = 0;
  for (int i = 0; i < 10'000; ++i) {
    std::string frame;
    switch (i % 4) {
      case 0:  // random bytes; a length that is not a whole number of words never decodes
        frame.resize(rng() % 512 + 1);
        for (auto& ch : frame)
          ch = static_cast<char>(rng());
        surelyInvalid += frame.size() % 8 != 0;
        break;
      case 1:  // a valid message, truncated: always ends prematurely
        frame = validBytes.substr(0, rng() % (validBytes.size() - 1));
        ++surelyInvalid;
        break;
      case 2:  // a valid message with bytes flipped: often still decodes, and is then refused
        frame = validBytes;
        for (int k = 0; k < 4; ++k)
          frame[rng() % frame.size()] ^= static_cast<char>(rng() | 1);
        break;
      case 3:  // oversized (over max_frame) now and then, else a multi-part message
        if (i % 1000 == 3)
          frame.assign(5 << 20, 'A');
        else {
          s.send(zmq::buffer(std::string("part")), zmq::send_flags::sndmore);
          frame = "x";
        }
        ++surelyInvalid;
        break;
    }
    s.send(zmq::buffer(frame), zmq::send_flags::none);
    ++sent;
  }
  // A peer speaking another major version is refused with both versions named.
  proto::EnvelopeBuilder future;
  future.envelope.setMajor(99);
  future.body().initHello().setName("fuzzer");
  s.send(future.frame(), zmq::send_flags::none);
  std::string refusal;
  ASSERT_TRUE(waitUntil(
      [&] {
        zmq::message_t m;
        while (s.recv(m, zmq::recv_flags::dontwait)) {
          auto d = proto::decodeEnvelope(m);
          if (d.index() == 0 && std::get<0>(d)->root().getBody().isRefused()) {
            std::string reason = std::get<0>(d)->root().getBody().getRefused().getReason();
            // Flipped-byte frames that still decode are refused too; wait for ours.
            if (reason.find("peer speaks 99.0") != std::string::npos) refusal = reason;
          }
        }
        return !refusal.empty();
      },
      20s));
  EXPECT_NE(refusal.find("peer speaks 99.0"), std::string::npos) << refusal;

  // Still serving: the CLI works and a job still runs through.
  EXPECT_EQ(c.cli({"agents"}).exitCode, 0);
  auto r = c.cli({"submit", definition(), "--wait"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(c.coordinator().running());
  // And the drops were counted.
  auto metrics =
      run({"curl", "-sf", "http://127.0.0.1:" + std::to_string(c.metricsPort()) + "/metrics"});
  ASSERT_EQ(metrics.exitCode, 0);
  auto pos = metrics.out.find("imgpipe_frames_total{result=\"dropped\"}");
  ASSERT_NE(pos, std::string::npos) << metrics.out;
  double dropped = std::stod(metrics.out.substr(metrics.out.find(' ', pos) + 1));
  auto rpos = metrics.out.find("imgpipe_frames_total{result=\"received\"}");
  ASSERT_NE(rpos, std::string::npos);
  double received = std::stod(metrics.out.substr(metrics.out.find(' ', rpos) + 1));
  std::cout << "sent " << sent << " bad frames (" << surelyInvalid
            << " undecodable by construction); coordinator "
            << "received " << received << ", dropped " << dropped << "\n";
  EXPECT_GE(received, sent);
  EXPECT_GE(dropped, surelyInvalid);
  EXPECT_LE(dropped, sent);
}

TEST_F(ControlTest, LostBuildAgentIsRequeuedAndTheJobNeverRunsTwice) {
  c.setCoordinatorExtra(kTopology);
  c.startCoordinator();
  // fence_after = grace: an agent cut off that long abandons its build itself.
  const std::string agentExtra = std::string(kFastAgent) + "fence_after: 3s\n" + simTimes("6s");
  c.startSimAgent("build-1", "build", agentExtra);
  c.startSimAgent("build-2", "build", agentExtra);
  c.startSimAgent("relay-1", "relay", std::string(kFastAgent) + simTimes("1s"));
  c.startSimAgent("ctrl-a", "glance", std::string(kFastAgent) + simTimes("1s"));
  ASSERT_TRUE(waitUntil([&] { return c.agentsOnline().size() == 4; }, 10s));
  const std::string id = c.cliJson({"submit", definition()})["id"];
  std::string first;
  ASSERT_TRUE(waitUntil(
      [&] {
        auto j = c.cliJson({"show", id});
        first = j["steps"][0]["agent"];
        return j["state"] == "building";
      },
      10s));
  const std::string second = first == "build-1" ? "build-2" : "build-1";
  // Freeze it: alive but silent, like a host behind a broken link.
  c.agent(first).signal(SIGSTOP);
  ASSERT_TRUE(waitUntil(
      [&] {
        return c.cliJson({"show", id})["steps"][0]["agent"] == second;
      },
      15s));
  c.agent(first).signal(SIGCONT);
  auto r = c.cli({"watch", id}, false);
  EXPECT_EQ(r.exitCode, 0) << r.out;
  auto job = c.cliJson({"show", id});
  EXPECT_EQ(job["steps"][0]["agent"], second);
  EXPECT_EQ(job["steps"][0]["attempts"], 2);
  int built = 0;
  for (const auto& e : c.cliJson({"events", id}))
    built += e["message"].get<std::string>().rfind("built ", 0) == 0;
  EXPECT_EQ(built, 1) << "a stale build's result was accepted";
  // The frozen agent gave up its stale build (fenced, or told by the coordinator).
  EXPECT_TRUE(waitUntil(
      [&] {
        auto log = c.agent(first).log();
        return log.find("abandoning task") != std::string::npos ||
               log.find("cancelled by the coordinator") != std::string::npos;
      },
      10s))
      << c.agent(first).log();
}

TEST_F(ControlTest, FailedJobReportsAndCanBeRetriedOrCancelled) {
  c.setCoordinatorExtra(kTopology);
  c.startCoordinator();
  c.startSimAgent("build-1", "build",
                  std::string(kFastAgent) +
                      "sim: {build: 300ms, fail_build_with: 'apt-get install exploded'}\n");
  c.startSimAgent("relay-1", "relay", kFastAgent);
  c.startSimAgent("ctrl-a", "glance", kFastAgent);
  ASSERT_TRUE(waitUntil([&] { return c.agentsOnline().size() == 3; }, 10s));
  auto r = c.cli({"submit", definition(), "--wait"}, false);
  EXPECT_EQ(r.exitCode, 1);
  auto job = c.cliJson({"show", "1"});
  EXPECT_EQ(job["state"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("apt-get install exploded"), std::string::npos)
      << job.dump();
  EXPECT_NE(job["steps"][0]["error"].get<std::string>().find("exit code 100"), std::string::npos);

  // retry runs it again (and it fails again: the agent still fails builds).
  EXPECT_EQ(c.cli({"retry", "1"}).exitCode, 0);
  EXPECT_TRUE(waitUntil([&] { return c.jobState("1") == "failed"; }, 10s));
  EXPECT_EQ(c.cliJson({"show", "1"})["steps"][0]["attempts"], 2);

  // Wrong state and unknown jobs are rejected with exit code 5 / 2.
  EXPECT_EQ(c.cli({"cancel", "1"}).exitCode, 5);
  EXPECT_EQ(c.cli({"show", "999"}).exitCode, 5);
  EXPECT_EQ(c.cli({"show", "abc"}).exitCode, 2);
  // An invalid definition never reaches the coordinator.
  auto bad = c.writeDefinition("bad.yaml", "name: Bad Name!\nbase: {path: /x}\n");
  auto v = c.cli({"submit", bad}, false);
  EXPECT_EQ(v.exitCode, 2);
  EXPECT_NE(v.err.find("bad.yaml:1:7: name"), std::string::npos) << v.err;
}

TEST_F(ControlTest, CancelStopsRunningTasks) {
  startAll("20s");
  const std::string id = c.cliJson({"submit", definition()})["id"];
  ASSERT_TRUE(waitUntil([&] { return c.jobState(id) == "building"; }, 10s));
  EXPECT_EQ(c.cli({"cancel", id}).exitCode, 0);
  EXPECT_EQ(c.jobState(id), "cancelled");
  EXPECT_TRUE(waitUntil(
      [&] {
        return c.agent("build-1").log().find("cancelled by the coordinator") != std::string::npos;
      },
      5s));
  // The agent is free again: the next job starts building at once.
  const std::string next = c.cliJson({"submit", definition("next")})["id"];
  EXPECT_TRUE(waitUntil([&] { return c.jobState(next) == "building"; }, 5s));
}

TEST_F(ControlTest, SitesWhoseDefinitionsDifferByALayerGetOneBuildPerDistinctDefinition) {
  // No links: every build agent sends straight to every controller.
  c.setCoordinatorExtra(R"(
heartbeat: {interval: 500ms, liveness: 4}
topology:
  sites:
    - {name: site-a, controller: ctrl-a}
    - {name: site-b, controller: ctrl-b}
    - {name: site-c, controller: ctrl-c}
)");
  c.startCoordinator();
  c.startSimAgent("build-1", "build", std::string(kFastAgent) + simTimes("300ms"));
  for (const char* ctrl : {"ctrl-a", "ctrl-b", "ctrl-c"})
    c.startSimAgent(ctrl, "glance", std::string(kFastAgent) + simTimes("300ms"));
  ASSERT_TRUE(waitUntil([&] { return c.agentsOnline().size() == 4; }, 10s)) << c.logs();

  const auto base = c.writeDefinition(
      "base.yaml", "name: demo\nversion: \"1.0\"\nbase: {path: /srv/base.qcow2}\n");
  // site-b has its own mirror of a package; site-c's layer changes nothing the build reads.
  const auto siteB =
      c.writeDefinition("site-b.yaml", "extends: base.yaml\npackages: {install: [htop]}\n");
  const auto siteC =
      c.writeDefinition("site-c.yaml", "# site-c takes the base as it is\nextends: base.yaml\n");
  auto submitted =
      c.cliJson({"submit", base, "-t", "site-a", "-t", "site-b=" + siteB, "-t", "site-c=" + siteC});
  ASSERT_EQ(submitted["also_submitted"].size(), 1u) << submitted.dump();
  const std::string shared = submitted["id"], own = submitted["also_submitted"][0]["id"];
  ASSERT_TRUE(
      waitUntil([&] { return c.jobState(shared) == "done" && c.jobState(own) == "done"; }, 20s))
      << c.cliJson({"show", shared}).dump() << c.cliJson({"show", own}).dump();

  // One build for site-a and site-c (the same merged definition), one for site-b.
  auto a = c.cliJson({"show", shared}), b = c.cliJson({"show", own});
  EXPECT_EQ(a["targets"], (nlohmann::json{"ctrl-a", "ctrl-c"}));
  EXPECT_EQ(a["definition_name"], "base.yaml");
  EXPECT_EQ(a["version"], "1.0");
  EXPECT_EQ(b["targets"], (nlohmann::json{"ctrl-b"}));
  EXPECT_EQ(b["definition_name"], "site-b.yaml");
  EXPECT_EQ(b["version"], "1.0-site-b") << "two images of one job never share a version";
  EXPECT_EQ(a["glance_images"].size(), 2u);
  EXPECT_EQ(b["glance_images"].size(), 1u);
  EXPECT_NE(a["artifact"]["sha256"], b["artifact"]["sha256"]);
  EXPECT_EQ(c.cliJson({"list"}).size(), 2u);

  // A site's definition must sit beside the submitted one; an unknown site is named.
  const auto elsewhere = c.dir() / "elsewhere";
  std::filesystem::create_directories(elsewhere);
  const auto stray = c.writeDefinition("elsewhere/site-b.yaml", "extends: base.yaml\n");
  auto r = c.cli({"submit", base, "-t", "site-b=" + stray}, false);
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find("is not beside"), std::string::npos) << r.err;
  r = c.cli({"submit", base, "-t", "site-z=" + siteB}, false);
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("unknown target site-z"), std::string::npos) << r.err;
  // A broken layer is refused before any job exists, naming the site and its file.
  const auto broken = c.writeDefinition("site-x.yaml", "extends: base.yaml\npackages: 3\n");
  r = c.cli({"submit", base, "-t", "site-a", "-t", "site-b=" + broken}, false);
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.err.find("site-x.yaml"), std::string::npos) << r.err;
  EXPECT_EQ(c.cliJson({"list"}).size(), 2u);
}

}  // namespace
