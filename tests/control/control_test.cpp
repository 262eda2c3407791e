// The control plane with real processes on loopback: a coordinator, agents whose work is
// simulated (tests/support/sim_agent.cpp), and the imgpipe CLI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "common/net/curve_keys.h"
#include "common/net/zap_handler.h"
#include "definition/bundle.h"
#include "definition/layers.h"
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

// An operator that sends a SUBMIT as `imgpipe submit` does but without the CLI's own check of the
// definition first, so what is measured is what the coordinator does with a hostile one.
class RawOperator {
 public:
  explicit RawOperator(Cluster& c) : socket_(context_, zmq::socket_type::dealer) {
    auto keys = net::loadSecretKey(c.dir() / "keys/ops.key");
    net::configureCurveClient(socket_, keys.publicKey, keys.secretKey,
                              net::loadPublicKey(c.dir() / "keys/coordinator.pub"));
    socket_.connect(c.coordinatorEndpoint());
  }
  void submit(std::uint64_t requestId, const definition::Bundle& bundle,
              const std::vector<std::pair<std::string, std::string>>& sites = {}) {
    proto::EnvelopeBuilder b;
    auto r = b.body().initRequest();
    r.setRequestId(requestId);
    auto s = r.initKind().initSubmit();
    s.setDefinition(bundle.rootText());
    s.setDefinitionName(bundle.rootPath);
    auto files = s.initBundle(static_cast<unsigned>(bundle.files.size() - 1));
    unsigned i = 0;
    for (const auto& [path, data] : bundle.files) {
      if (path == bundle.rootPath) continue;
      files[i].setPath(path);
      files[i++].setContent(
          kj::arrayPtr(reinterpret_cast<const capnp::byte*>(data.data()), data.size()));
    }
    auto sd = s.initSiteDefinitions(static_cast<unsigned>(sites.size()));
    for (unsigned k = 0; k < sites.size(); ++k) {
      sd[k].setTarget(sites[k].first);
      sd[k].setDefinitionName(sites[k].second);
    }
    socket_.send(b.frame(), zmq::send_flags::none);
  }
  // The reply to `requestId`: "submitted", or the error's message; "(none)" after `wait`.
  std::string reply(std::uint64_t requestId, std::chrono::milliseconds wait = 10'000ms) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    socket_.set(zmq::sockopt::rcvtimeo, 50);
    while (!answers_.count(requestId) && std::chrono::steady_clock::now() < deadline) {
      zmq::message_t m;
      if (!socket_.recv(m)) continue;
      auto d = proto::decodeEnvelope(m);
      if (d.index() != 0) continue;
      auto body = std::get<0>(d)->root().getBody();
      if (!body.isReply()) continue;
      auto kind = body.getReply().getKind();
      answers_[body.getReply().getRequestId()] = kind.isSubmitted() ? "submitted"
                                                 : kind.isError()
                                                     ? std::string(kind.getError().getMessage())
                                                     : "(another reply)";
    }
    auto it = answers_.find(requestId);
    return it == answers_.end() ? "(none)" : it->second;
  }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::map<std::uint64_t, std::string> answers_;  // replies come in the order checks end
};

// Issue 23's 480-byte alias bomb: it stood for billions of nodes.
std::string aliasBomb() {
  std::string bomb =
      "name: bomb\nbase: {path: /srv/base.qcow2}\nx0: &a0 [lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    const auto p = "*a" + std::to_string(i - 1);
    bomb += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + p + ", " + p + ", " + p +
            ", " + p + ", " + p + ", " + p + "]\n";
  }
  return bomb;
}

// A chain of `depth` definitions, each extending the next: layer0.yaml is the one submitted.
definition::Bundle layerChain(std::size_t depth) {
  definition::Bundle b = definition::bundleOf(
      "layer0.yaml", depth == 1 ? "name: deep\nversion: '1.0'\nbase: {path: /srv/base.qcow2}\n"
                                : "extends: layer1.yaml\n");
  for (std::size_t i = 1; i < depth; ++i)
    b.files["layer" + std::to_string(i) + ".yaml"] =
        i + 1 == depth ? "name: deep\nversion: '1.0'\nbase: {path: /srv/base.qcow2}\n"
                       : "extends: layer" + std::to_string(i + 1) + ".yaml\n";
  return b;
}

// A definition of `bytes` bytes that is legal and slow to check: a long list of packages. Each
// name is parsed, checked and merged one by one (about 2 s for 1 MiB here).
std::string longPackageList(std::size_t bytes) {
  std::string s = "name: big\nversion: '1.0'\nbase: {path: /srv/base.qcow2}\npackages: {install: [";
  for (int i = 0; s.size() < bytes - 40; ++i)
    s += "p" + std::to_string(i) + ", ";
  return s + "pend]}\n";
}

// As large as a bundle may be (3 MiB, each file 1 MiB): a chain of three such layers, each with
// as many files (merged by path). It takes far longer than definition_check_timeout to check.
definition::Bundle largestLayeredBundle() {
  const std::size_t fileBytes = definition::BundleLimits{}.fileBytes - 200;
  auto files = [&](const std::string& prefix) {
    std::string s = "files:\n";
    for (int i = 0; s.size() < fileBytes - 80; ++i)
      s += "  - {path: /etc/" + prefix + std::to_string(i) + ", content: x}\n";
    return s;
  };
  auto b = definition::bundleOf("l2.yaml", "extends: l1.yaml\n" + files("c"));
  b.files["l1.yaml"] = "extends: base.yaml\n" + files("b");
  b.files["base.yaml"] = "name: huge\nversion: '1.0'\nbase: {path: /srv/base.qcow2}\n" + files("a");
  return b;
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

// Issue 23: a definition is checked off the coordinator's thread, within
// definition_check_timeout. A hostile one is answered at once; slow legal ones do not keep
// `imgpipe list` waiting; one past the limit is refused naming it.
TEST_F(ControlTest, DefinitionsAreCheckedOffTheCoordinatorsThreadWithinTheirLimit) {
  c.setCoordinatorExtra(kTopology);
  c.startCoordinator();
  RawOperator op(c);
  using ms = std::chrono::milliseconds;
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - t);
  };
  auto timed = [&](std::uint64_t id, const definition::Bundle& b) {
    const auto start = std::chrono::steady_clock::now();
    op.submit(id, b);
    auto answer = op.reply(id);
    const auto took = since(start);
    std::cout << b.rootPath << " (" << b.totalBytes() << " bytes): " << took.count()
              << " ms: " << answer << "\n";
    return std::pair{answer, took};
  };

  const auto bomb = aliasBomb();
  ASSERT_LE(bomb.size(), 480u);
  auto [aliases, aliasesTook] = timed(1, definition::bundleOf("bomb.yaml", bomb));
  EXPECT_NE(aliases.find("YAML anchors and aliases are not allowed"), std::string::npos) << aliases;
  EXPECT_LT(aliasesTook, 1s);
  auto [deep, deepTook] = timed(2, layerChain(definition::kMaxLayers));
  EXPECT_EQ(deep, "submitted");
  EXPECT_LT(deepTook, 1s);
  auto [deeper, deeperTook] = timed(3, layerChain(definition::kMaxLayers + 1));
  EXPECT_NE(deeper.find("more than 8 layers"), std::string::npos) << deeper;
  EXPECT_LT(deeperTook, 1s);

  // As many slow checks as run at once (2), and `imgpipe list` meanwhile. Were they checked on
  // the coordinator's thread, a list would wait for both.
  const auto slow = definition::bundleOf("big.yaml", longPackageList(512u << 10));
  const auto start = std::chrono::steady_clock::now();
  op.submit(10, slow);
  op.submit(11, slow);
  std::string first, second;
  ms firstAfter{0};
  std::atomic<bool> answered{false};
  std::thread replies([&] {
    first = op.reply(10, 30s);
    firstAfter = since(start);
    answered = true;
    second = op.reply(11, 30s);
  });
  std::vector<ms> lists;
  while (!answered) {
    const auto t = std::chrono::steady_clock::now();
    const bool during = !answered;
    auto r = c.cli({"list"});
    if (during) lists.push_back(since(t));
    EXPECT_EQ(r.exitCode, 0) << r.err;
  }
  replies.join();
  std::cout << "two checks of " << slow.totalBytes() << " bytes: the first answered after "
            << firstAfter.count() << " ms (" << first << "), the second: " << second
            << "; imgpipe list meanwhile:";
  for (auto l : lists)
    std::cout << " " << l.count() << " ms";
  std::cout << "\n";
  for (const auto& answer : {first, second})
    EXPECT_TRUE(answer == "submitted" ||
                answer.find("definition_check_timeout") != std::string::npos)
        << answer;
  ASSERT_GE(firstAfter, 1500ms) << "the check is too fast here to show anything";
  ASSERT_FALSE(lists.empty());
  EXPECT_LT(*std::max_element(lists.begin(), lists.end()), 1s);
  EXPECT_GE(lists.size(), 2u);

  // Past the limit (5 s by default): refused naming it; the check's thread runs on, its slot held.
  // Checks given up on above hold their slots until they end: busy until then.
  std::string huge = "busy";
  ms hugeTook{0};
  for (std::uint64_t id = 20; huge.find("busy") != std::string::npos && id < 80; ++id) {
    std::this_thread::sleep_for(500ms);
    std::tie(huge, hugeTook) = timed(id, largestLayeredBundle());
  }
  EXPECT_NE(huge.find("definition_check_timeout (5000 ms)"), std::string::npos) << huge;
  EXPECT_GE(hugeTook, 5s);
  EXPECT_LT(hugeTook, 7s);
  const auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(c.cli({"list"}).exitCode, 0);
  std::cout << "imgpipe list while the given-up check runs on: " << since(t).count() << " ms\n";
}
