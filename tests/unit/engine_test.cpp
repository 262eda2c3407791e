// The coordinator's engine without sockets (issue 10), as the fetch session is tested: a real
// Store in a temporary directory, a real authorized_keys file, an Outbound that records what
// would be sent, and a clock the test moves. Scheduling, the route a build takes, re-queueing
// after the grace period and fencing a lost agent, each in milliseconds.
#include "coordinator/engine.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include "common/agent/wire.h"
#include "common/hash.h"
#include "common/net/curve_keys.h"
#include "common/temp_dir.h"
#include "common/yaml_reader.h"
#include "protocol/codec.h"

using namespace imgpipe;
using namespace imgpipe::coord;
using namespace std::chrono_literals;

namespace {

using Body = proto::Envelope::Body;

struct Sent {
  std::string routingId;
  std::unique_ptr<proto::Decoded<proto::Envelope>> message;
  Body::Reader body() { return message->root().getBody(); }
};

class Recorder : public Outbound {
 public:
  bool send(const std::string& routingId, zmq::message_t frame) override {
    auto decoded = proto::decodeEnvelope(frame);
    auto* ok = std::get_if<0>(&decoded);
    if (ok == nullptr) throw std::logic_error("the engine sent a frame it cannot decode");
    sent.push_back({routingId, std::move(*ok)});
    return !gone.contains(routingId);
  }
  std::vector<Sent> sent;
  std::set<std::string> gone;  // connections that went away: a send to them fails
};

// What the engine posts to its own thread (definition checks' results), run when a test says so:
// the test's thread is the engine's, as the reactor's is the server's.
class Posted {
 public:
  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      fns_.push_back(std::move(fn));
    }
    ready_.notify_all();
  }
  // Waits up to `wait` for something posted, then runs all that is; false when nothing came.
  bool run(std::chrono::milliseconds wait = 10s) {
    std::vector<std::function<void()>> fns;
    {
      std::unique_lock lock(mutex_);
      if (!ready_.wait_for(lock, wait, [&] { return !fns_.empty(); })) return false;
      fns.swap(fns_);
    }
    for (auto& fn : fns)
      fn();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<std::function<void()>> fns_;
};

// Holds definition checks until the test opens it: a check as slow as the test wants.
class Gate {
 public:
  void pass() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  bool waiting(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
  int waiting_ = 0;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::map<std::string, std::string> roles = {
        {"build-1", "build"}, {"build-2", "build"}, {"ctrl-a", "glance"}, {"alice", "operator"}};
    std::ofstream authorized(dir_.path() / "authorized_keys");
    for (const auto& [name, role] : roles) {
      keys_[name] = net::generateKeyPair(name);
      roles_[name] = role;
      authorized << name << " " << role << " " << keys_[name].publicKey << "\n";
    }
    authorized.close();
    keysFile_ = std::make_unique<net::AuthorizedKeysFile>(dir_.path() / "authorized_keys");
    store_ = std::make_unique<Store>(dir_.path() / "state");
    EngineOptions o;
    o.clock.steady = [this] { return steady_; };
    o.clock.wallMs = [this] { return wallMs_; };
    o.heartbeat = {.interval = 1000ms, .liveness = 3};
    o.buildGrace = 60s;
    o.topology = Topology::parse(YamlReader::fromString(
        "sites: [{name: a, controller: ctrl-a}]\ndefault_targets: [a]\n", "topology.yaml"));
    o.inspectDefinition = [gate = gate_](const definition::Bundle&) {
      if (gate) gate->pass();
      return std::pair<std::string, std::string>{"img", "1.0"};
    };
    o.post = [this](std::function<void()> fn) { posted_.post(std::move(fn)); };
    o.definitionCheckTimeout = 5s;
    engine_ = std::make_unique<Engine>(*store_, *keysFile_, std::move(o), out_);
  }

  void deliver(const std::string& name, proto::EnvelopeBuilder& b) {
    auto frame = b.frame();
    auto decoded = proto::decodeEnvelope(frame);
    engine_->onMessage("rid-" + name, {name, roles_.at(name), keys_.at(name).publicKey},
                       std::get<0>(decoded)->root());
  }

  void hello(const std::string& name, std::vector<std::string> active = {}) {
    proto::EnvelopeBuilder b;
    auto h = b.body().initHello();
    h.setRole(roles_.at(name) == "build" ? proto::Role::BUILD : proto::Role::GLANCE);
    h.setName(name);
    h.setVersion("test");
    h.setCapacity(1);
    h.setDataEndpoint("tcp://10.0.0." + std::to_string(name.size()) + ":7700");
    auto a = h.initActiveTasks(static_cast<unsigned>(active.size()));
    for (unsigned i = 0; i < active.size(); ++i)
      a.set(i, active[i]);
    h.setFreeBytes(100ull << 30);
    deliver(name, b);
  }

  void heartbeat(const std::string& name) {
    proto::EnvelopeBuilder b;
    b.body().setHeartbeat();
    deliver(name, b);
  }

  // A submit, answered once its check comes back (`wait`: the test runs what it posts).
  void submit(std::uint64_t requestId = 1, bool wait = true) {
    proto::EnvelopeBuilder b;
    auto r = b.body().initRequest();
    r.setRequestId(requestId);
    auto s = r.initKind().initSubmit();
    s.setDefinition("name: img\nversion: '1.0'\nbase: {path: /srv/base.qcow2}\n");
    s.setDefinitionName("img.yaml");
    deliver("alice", b);
    if (wait) {
      ASSERT_TRUE(posted_.run()) << "no definition check came back";
    }
  }

  // The replies alice got: (request id, which).
  std::vector<std::pair<std::uint64_t, proto::OperatorReply::Kind::Which>> replies() {
    std::vector<std::pair<std::uint64_t, proto::OperatorReply::Kind::Which>> out;
    for (auto& s : out_.sent)
      if (s.routingId == "rid-alice" && s.body().which() == Body::REPLY)
        out.emplace_back(s.body().getReply().getRequestId(), s.body().getReply().getKind().which());
    return out;
  }
  std::string errorOf(std::uint64_t requestId) {
    for (auto& s : out_.sent)
      if (s.routingId == "rid-alice" && s.body().which() == Body::REPLY &&
          s.body().getReply().getRequestId() == requestId &&
          s.body().getReply().getKind().isError())
        return s.body().getReply().getKind().getError().getMessage();
    return "(no error)";
  }
  void list(std::uint64_t requestId) {
    proto::EnvelopeBuilder b;
    auto r = b.body().initRequest();
    r.setRequestId(requestId);
    r.initKind().initList();
    deliver("alice", b);
  }

  void completeBuild(const std::string& agentName, const std::string& taskId,
                     const std::string& jobId, std::uint64_t seq = 1,
                     std::vector<std::string> outputs = {},
                     std::vector<agent::ArtifactInfo> more = {}) {
    proto::EnvelopeBuilder b;
    auto e = b.body().initTaskEvent();
    e.setTaskId(taskId);
    e.setJobId(jobId);
    e.setSeq(seq);
    e.setReliable(true);
    e.setTimeMs(wallMs_);
    agent::ArtifactInfo a;
    a.id = toHex(sha256("image"));
    a.sha512 = toHex(sha512("image"));
    a.size = 300 << 20;
    a.virtualSize = 4ull << 30;
    a.manifestDigest = toHex(sha256("manifest"));
    a.imageName = "img";
    a.imageVersion = "1.0";
    a.outputs = std::move(outputs);
    auto c = e.initKind().initCompleted();
    agent::fillArtifact(c.initArtifact(), a);
    auto list = c.initMoreArtifacts(static_cast<unsigned>(more.size()));
    for (unsigned i = 0; i < more.size(); ++i)
      agent::fillArtifact(list[i], more[i]);
    deliver(agentName, b);
  }

  // The live ISO of the image completeBuild reports, as an artifact of its own.
  static agent::ArtifactInfo isoArtifact(std::string version = "1.0") {
    agent::ArtifactInfo a;
    a.id = toHex(sha256("iso"));
    a.sha512 = toHex(sha512("iso"));
    a.size = 400 << 20;
    a.virtualSize = a.size;
    a.manifestDigest = toHex(sha256("iso manifest"));
    a.imageName = "img";
    a.imageVersion = std::move(version);
    a.outputs = {"iso"};
    a.kind = "iso";
    return a;
  }

  // A task event that ends `taskId` well (a fetch's or a registration's).
  void completeTask(const std::string& agentName, const std::string& taskId,
                    const std::string& jobId, const std::string& glanceId = "") {
    proto::EnvelopeBuilder b;
    auto e = b.body().initTaskEvent();
    e.setTaskId(taskId);
    e.setJobId(jobId);
    e.setSeq(1);
    e.setReliable(true);
    e.setTimeMs(wallMs_);
    e.initKind().initCompleted().setGlanceImageId(glanceId);
    deliver(agentName, b);
  }

  // What the tasks sent to `name` carry: (step, artifact id, output).
  std::vector<std::tuple<std::string, std::string, std::string>> taskPayloads(
      const std::string& name) {
    std::vector<std::tuple<std::string, std::string, std::string>> out;
    for (auto& s : out_.sent) {
      if (s.routingId != "rid-" + name || s.body().which() != Body::ASSIGN_TASK) continue;
      auto t = s.body().getAssignTask();
      auto k = t.getKind();
      if (k.which() == proto::Task::Kind::FETCH)
        out.emplace_back(t.getStep(), k.getFetch().getArtifactId(), "");
      else if (k.which() == proto::Task::Kind::REGISTER)
        out.emplace_back(t.getStep(), k.getRegister().getArtifactId(), k.getRegister().getOutput());
    }
    return out;
  }

  // Moves both clocks and lets the engine look at the time.
  void advance(std::chrono::milliseconds d, const std::vector<std::string>& alive = {}) {
    for (auto left = d; left > 0ms;) {
      const auto stepBy = std::min<std::chrono::milliseconds>(left, 1000ms);
      steady_ += stepBy;
      wallMs_ += stepBy.count();
      left -= stepBy;
      for (const auto& name : alive)
        heartbeat(name);
      engine_->onTick();
    }
  }

  // The tasks assigned to `name` so far: task id -> job id.
  std::vector<std::pair<std::string, std::string>> assigned(const std::string& name,
                                                            Body::Which kind = Body::ASSIGN_TASK) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& s : out_.sent)
      if (s.routingId == "rid-" + name && s.body().which() == kind) {
        if (kind == Body::ASSIGN_TASK)
          out.emplace_back(s.body().getAssignTask().getTaskId(),
                           s.body().getAssignTask().getJobId());
        else if (kind == Body::CANCEL_TASK)
          out.emplace_back(s.body().getCancelTask().getTaskId(),
                           s.body().getCancelTask().getReason());
      }
    return out;
  }

  TempDir dir_;
  Posted posted_;               // outlives the engine, which posts to it
  std::shared_ptr<Gate> gate_;  // set before SetUp: every check waits at it
  std::map<std::string, net::CurveKeyPair> keys_;
  std::map<std::string, std::string> roles_;
  std::unique_ptr<net::AuthorizedKeysFile> keysFile_;
  std::unique_ptr<Store> store_;
  Recorder out_;
  std::unique_ptr<Engine> engine_;
  std::chrono::steady_clock::time_point steady_ = std::chrono::steady_clock::time_point{} + 1h;
  std::int64_t wallMs_ = 1'780'000'000'000;
};

}  // namespace

TEST_F(EngineTest, ABuildGoesToAFreeAgentAndItsImageOnToTheController) {
  hello("build-1");
  hello("ctrl-a");
  submit();
  auto builds = assigned("build-1");
  ASSERT_EQ(builds.size(), 1u) << "the queued build was not assigned";
  const auto [taskId, jobId] = builds[0];
  auto task = agent::toTaskSpec([&] {
    for (auto& s : out_.sent)
      if (s.body().which() == Body::ASSIGN_TASK) return s.body().getAssignTask();
    throw std::logic_error("no task");
  }());
  auto* build = std::get_if<agent::BuildSpec>(&task.kind);
  ASSERT_NE(build, nullptr);
  EXPECT_EQ(build->imageVersion, "1.0") << "the version is the one fixed at submit";

  completeBuild("build-1", taskId, jobId);
  // The route: straight from the build agent to the site's controller (no links configured),
  // with the build agent told to let the controller's key fetch the artifact — at once, in the
  // same turn (this found the engine reading the build step through a reference that planning
  // the delivery had left dangling; the fetch then waited for the next tick, or for ever).
  auto fetches = assigned("ctrl-a");
  ASSERT_EQ(fetches.size(), 1u);
  EXPECT_NE(fetches[0].first, taskId);
  bool granted = false;
  for (auto& s : out_.sent)
    if (s.routingId == "rid-build-1" && s.body().which() == Body::GRANT)
      granted |= s.body().getGrant().getPeerKey() == keys_["ctrl-a"].publicKey &&
                 !s.body().getGrant().getRevoke();
  EXPECT_TRUE(granted) << "the controller was given no grant on the build agent";
  EXPECT_EQ(engine_->jobsByState().at(JobState::transferring), 1u);
}

// A watch is dropped when its CLI goes away (the push to it fails); what the engine kept of that
// connection (the key it asked with) goes too, though no key changed: a coordinator that is
// watched a million times holds nothing for it.
TEST_F(EngineTest, AWatchWhoseCliWentAwayLeavesNothingBehind) {
  submit();
  proto::EnvelopeBuilder b;
  auto r = b.body().initRequest();
  r.setRequestId(2);
  r.initKind().setWatch("1");
  deliver("alice", b);
  EXPECT_EQ(engine_->watchingConnections(), 1u);
  advance(2000ms);
  EXPECT_EQ(engine_->watchingConnections(), 1u) << "a live watch was forgotten";

  out_.gone.insert("rid-alice");
  hello("build-1");  // the build is assigned: the job changes and its push to alice fails
  advance(2000ms, {"build-1"});
  EXPECT_EQ(engine_->watchingConnections(), 0u);
}

TEST_F(EngineTest, ALostBuildAgentsBuildIsRequeuedAfterTheGracePeriodAndItsLateResultRefused) {
  hello("build-1");
  submit();
  ASSERT_EQ(assigned("build-1").size(), 1u);
  const auto [oldTask, jobId] = assigned("build-1")[0];
  hello("build-2");
  EXPECT_TRUE(assigned("build-2").empty()) << "one build, one agent";

  // build-1 falls silent: lost after three missed beats, but its build waits out the grace.
  advance(4s, {"build-2"});
  EXPECT_FALSE(engine_->agents().at("build-1").online);
  EXPECT_TRUE(assigned("build-2").empty()) << "re-queued before the grace period ended";
  advance(57s, {"build-2"});
  EXPECT_TRUE(assigned("build-2").empty());
  advance(4s, {"build-2"});  // 61 s since it was lost
  ASSERT_EQ(assigned("build-2").size(), 1u) << "not re-queued after the grace period";
  const auto newTask = assigned("build-2")[0].first;
  EXPECT_NE(newTask, oldTask) << "a new attempt gets a new task id";
  EXPECT_EQ(engine_->counters().requeuedBuilds, 1u);

  // build-1 comes back still holding its old task, and reports its result: fenced.
  hello("build-1", {oldTask});
  completeBuild("build-1", oldTask, jobId);
  bool cancelled = false;
  for (const auto& [task, reason] : assigned("build-1", Body::CANCEL_TASK))
    cancelled |= task == oldTask;
  EXPECT_TRUE(cancelled) << "the old attempt was not told to stop";
  EXPECT_TRUE(assigned("ctrl-a").empty());
  EXPECT_EQ(engine_->jobsByState().count(JobState::transferring), 0u)
      << "the late result of a superseded attempt moved the job on";

  // The current attempt's result is the one that counts.
  completeBuild("build-2", newTask, jobId);
  EXPECT_EQ(engine_->jobsByState().at(JobState::transferring), 1u);
}

TEST_F(EngineTest, AStepThatFailedTransientlyRunsAgainAfterItsDelayOnly) {
  hello("build-1");
  submit();
  const auto [taskId, jobId] = assigned("build-1")[0];
  proto::EnvelopeBuilder b;
  auto e = b.body().initTaskEvent();
  e.setTaskId(taskId);
  e.setJobId(jobId);
  e.setSeq(1);
  e.setReliable(true);
  auto f = e.initKind().initFailed();
  f.setStep("packages");
  f.setMessage("the mirror did not answer");
  f.setRetryable(true);
  deliver("build-1", b);
  EXPECT_EQ(assigned("build-1").size(), 1u) << "retried at once";
  advance(4s, {"build-1"});
  EXPECT_EQ(assigned("build-1").size(), 1u) << "retried before its delay (5 s)";
  advance(2s, {"build-1"});
  EXPECT_EQ(assigned("build-1").size(), 2u) << "not retried after its delay";
}

TEST_F(EngineTest, AnIsoTravelsAsAnArtifactOfItsOwnAndIsRegisteredFromIt) {
  hello("build-1");
  hello("ctrl-a");
  submit();
  auto builds = assigned("build-1");
  ASSERT_EQ(builds.size(), 1u);
  const auto [taskId, jobId] = builds[0];
  completeBuild("build-1", taskId, jobId, 1, {"qcow2", "raw"}, {isoArtifact()});
  auto job = store_->loadJob(std::stoll(jobId));
  ASSERT_TRUE(job.has_value());
  ASSERT_EQ(job->moreArtifacts.size(), 1u) << "the iso artifact was not kept with the job";
  EXPECT_EQ(job->moreArtifacts[0].kind, "iso");
  std::vector<std::string> names;
  for (const auto& step : job->steps)
    names.push_back(step.name);
  EXPECT_EQ(names, (std::vector<std::string>{"build", "hop build-1 -> ctrl-a",
                                             "hop build-1 -> ctrl-a iso", "register ctrl-a",
                                             "register ctrl-a raw", "register ctrl-a iso"}));
  const std::string qcow2Id = toHex(sha256("image")), isoId = toHex(sha256("iso"));
  // Both hops start at once, each fetching its own artifact, each granted on the build agent.
  auto tasks = taskPayloads("ctrl-a");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0], std::make_tuple(std::string("hop build-1 -> ctrl-a"), qcow2Id, ""));
  EXPECT_EQ(tasks[1], std::make_tuple(std::string("hop build-1 -> ctrl-a iso"), isoId, ""));
  std::set<std::string> granted;
  for (auto& s : out_.sent)
    if (s.routingId == "rid-build-1" && s.body().which() == Body::GRANT)
      granted.insert(s.body().getGrant().getArtifactId());
  EXPECT_EQ(granted, (std::set<std::string>{qcow2Id, isoId}));
  // The iso is registered once the iso has arrived, from the iso; the qcow2's registrations
  // wait for the qcow2.
  const auto fetches = assigned("ctrl-a");
  completeTask("ctrl-a", fetches[1].first, jobId);
  tasks = taskPayloads("ctrl-a");
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[2], std::make_tuple(std::string("register ctrl-a iso"), isoId, "iso"));
  completeTask("ctrl-a", fetches[0].first, jobId);
  tasks = taskPayloads("ctrl-a");
  ASSERT_EQ(tasks.size(), 5u);
  EXPECT_EQ(tasks[3], std::make_tuple(std::string("register ctrl-a"), qcow2Id, "qcow2"));
  EXPECT_EQ(tasks[4], std::make_tuple(std::string("register ctrl-a raw"), qcow2Id, "raw"));
  auto all = assigned("ctrl-a");
  for (size_t i = 2; i < all.size(); ++i)
    completeTask("ctrl-a", all[i].first, jobId, "glance-" + std::to_string(i));
  EXPECT_EQ(store_->loadJob(std::stoll(jobId))->state, JobState::done);
}

TEST_F(EngineTest, AnIsoNoArtifactCarriesIsNotRegistered) {
  // A build agent before 0.5 listed the iso among the qcow2's outputs and kept the file.
  hello("build-1");
  hello("ctrl-a");
  submit();
  auto builds = assigned("build-1");
  ASSERT_EQ(builds.size(), 1u);
  const auto [taskId, jobId] = builds[0];
  completeBuild("build-1", taskId, jobId, 1, {"qcow2", "raw", "iso"});
  auto job = store_->loadJob(std::stoll(jobId));
  ASSERT_TRUE(job.has_value());
  std::vector<std::string> names;
  for (const auto& step : job->steps)
    if (step.kind != StepKind::build) names.push_back(step.name);
  EXPECT_EQ(names, (std::vector<std::string>{"hop build-1 -> ctrl-a", "register ctrl-a",
                                             "register ctrl-a raw"}));
}

TEST_F(EngineTest, ABuildsOtherArtifactsMustBeOfItsJobAndEachOutputOnce) {
  hello("build-1");
  hello("ctrl-a");
  auto failedWith = [&](std::vector<agent::ArtifactInfo> more) {
    submit();
    auto builds = assigned("build-1");
    const auto [taskId, jobId] = builds.back();
    completeBuild("build-1", taskId, jobId, 1, {"qcow2"}, std::move(more));
    auto job = store_->loadJob(std::stoll(jobId));
    EXPECT_EQ(job->state, JobState::failed);
    return job->error;
  };
  EXPECT_NE(failedWith({isoArtifact("0.9")}).find("version '0.9'"), std::string::npos);
  auto twice = isoArtifact();
  EXPECT_NE(failedWith({isoArtifact(), twice}).find("iso artifact out of place"),
            std::string::npos);
  auto qcow2 = isoArtifact();
  qcow2.kind = "qcow2";
  EXPECT_NE(failedWith({qcow2}).find("qcow2 artifact out of place"), std::string::npos);
  auto raw = isoArtifact();
  raw.kind = "raw";
  EXPECT_NE(failedWith({raw}).find("output 'raw', which is not a file"), std::string::npos);
}

// The definition checks' own: a submit is answered when its check comes back to the engine's
// thread, which meanwhile answers everything else; a check past definition_check_timeout is
// refused and its late result dropped; at most two checks run, the late ones included.
class SlowCheckTest : public EngineTest {
 protected:
  void SetUp() override {
    gate_ = std::make_shared<Gate>();
    EngineTest::SetUp();
    hello("build-1");
    hello("ctrl-a");
  }
  void TearDown() override { gate_->open(); }
  using Kind = proto::OperatorReply::Kind;
};

TEST_F(SlowCheckTest, OthersAreAnsweredWhileADefinitionIsCheckedAndTheSubmitAfterIt) {
  submit(7, false);
  ASSERT_TRUE(gate_->waiting(1));
  list(8);
  EXPECT_EQ(replies(), (std::vector<std::pair<std::uint64_t, Kind::Which>>{{8, Kind::JOBS}}))
      << "the list waited for the check, or the submit was answered before it";
  gate_->open();
  ASSERT_TRUE(posted_.run());
  EXPECT_EQ(replies(), (std::vector<std::pair<std::uint64_t, Kind::Which>>{{8, Kind::JOBS},
                                                                           {7, Kind::SUBMITTED}}));
  EXPECT_EQ(assigned("build-1").size(), 1u) << "the job was stored and scheduled";
}

TEST_F(SlowCheckTest, ACheckPastTheLimitIsRefusedAndItsLateResultDropped) {
  submit(7, false);
  ASSERT_TRUE(gate_->waiting(1));
  advance(4s);
  EXPECT_TRUE(replies().empty());
  advance(1s);
  EXPECT_EQ(errorOf(7),
            "checking the definition took longer than the coordinator's definition_check_timeout "
            "(5000 ms); nothing was submitted");
  gate_->open();
  ASSERT_TRUE(posted_.run());
  EXPECT_EQ(replies().size(), 1u) << "the late result was answered too";
  EXPECT_TRUE(store_->listJobs({}, 10).empty()) << "the late result was stored";
  EXPECT_TRUE(assigned("build-1").empty());
}

TEST_F(SlowCheckTest, ChecksBeyondTheLimitAreRefusedBusyUntilTheLateOnesEnd) {
  submit(1, false);
  submit(2, false);
  ASSERT_TRUE(gate_->waiting(2));
  submit(3, false);
  EXPECT_EQ(errorOf(3),
            "the coordinator is busy checking 2 definitions (its limit); retry in a moment");
  // Both given up on: their threads still run, so they still hold their slots.
  advance(6s, {"build-1", "ctrl-a"});
  submit(4, false);
  EXPECT_NE(errorOf(4).find("busy"), std::string::npos) << errorOf(4);
  gate_->open();
  while (posted_.run(300ms)) {
  }
  submit(5);
  EXPECT_EQ(replies().back(), (std::pair<std::uint64_t, Kind::Which>{5, Kind::SUBMITTED}));
  EXPECT_EQ(store_->listJobs({}, 10).size(), 1u);
}

TEST_F(SlowCheckTest, AnEngineDestroyedWhileACheckRunsHearsNothingOfIt) {
  submit(7, false);
  ASSERT_TRUE(gate_->waiting(1));
  engine_.reset();
  gate_->open();
  EXPECT_FALSE(posted_.run(500ms)) << "a result was posted to an engine that is gone";
}
