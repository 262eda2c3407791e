// The TaskRunner the agents use for fetch tasks, in-process over loopback: a serving plane on
// its own reactor thread, a receiving plane, real CURVE sockets, a recording TaskReporter.
#include "transfer/fetch_runner.h"

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "common/temp_dir.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

class RecordingReporter : public agent::TaskReporter {
 public:
  void progress(const agent::ProgressInfo& info) override {
    std::lock_guard lock(mutex_);
    progress_.push_back(info);
  }
  void log(agent::LogLevel, const std::string&, const std::string& message,
           std::uint64_t) override {
    std::lock_guard lock(mutex_);
    logs_.push_back(message);
  }
  void completed(const agent::TaskResultInfo& result) override {
    std::lock_guard lock(mutex_);
    completed_ = result;
  }
  void failed(const agent::TaskFailureInfo& failure) override {
    std::lock_guard lock(mutex_);
    failed_ = failure;
  }
  std::optional<agent::TaskResultInfo> completed_;
  std::optional<agent::TaskFailureInfo> failed_;
  std::vector<agent::ProgressInfo> progress_;
  std::vector<std::string> logs_;
  std::mutex mutex_;
};

struct Serving {
  zmq::context_t context{1};
  net::Reactor reactor;
  net::CurveKeyPair keys = net::generateKeyPair("build");
  std::unique_ptr<TransferPlane> plane;
  std::jthread thread;

  explicit Serving(const fs::path& store) {
    TransferConfig c;
    c.listen = "tcp://127.0.0.1:*";
    c.storeDir = store;
    c.reserve = 0;
    plane = std::make_unique<TransferPlane>(c, context, reactor, keys, true);
  }
  void start() {
    thread = std::jthread([this] { reactor.run(); });
  }
  ~Serving() {
    reactor.stop();
    if (thread.joinable()) thread.join();
    plane.reset();
  }
  std::string endpoint() { return plane->server()->endpoint(); }
};

struct Receiving {
  zmq::context_t context{1};
  net::Reactor reactor;  // unused: a receiver serves nothing
  net::CurveKeyPair keys = net::generateKeyPair("ctrl");
  std::shared_ptr<TransferPlane> plane;
  explicit Receiving(const fs::path& store, std::chrono::milliseconds authFailTimeout = 60s) {
    TransferConfig c;
    c.listen.clear();
    c.storeDir = store;
    c.reserve = 0;
    c.liveness.authFailTimeout = authFailTimeout;
    c.liveness.retryDelay = 200ms;
    plane = std::make_shared<TransferPlane>(c, context, reactor, keys, false);
  }
};

fs::path makeImage(const fs::path& dir, size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((i * 7919) >> 5);
  auto p = dir / "image.qcow2";
  std::ofstream(p, std::ios::binary) << data;
  return p;
}

agent::TaskSpec fetchTask(const agent::ArtifactInfo& a, const std::string& endpoint,
                          const std::string& key) {
  agent::TaskSpec t;
  t.taskId = "job-1.hop.1";
  t.jobId = "job-1";
  t.step = "hop ctrl";
  agent::FetchSpec f;
  f.artifactId = a.id;
  f.manifestDigest = a.manifestDigest;
  f.imageName = a.imageName;
  f.imageVersion = a.imageVersion;
  f.upstreamName = "build";
  f.upstreamEndpoint = endpoint;
  f.upstreamKey = key;
  f.size = a.size;
  t.kind = f;
  return t;
}

agent::GrantSpec grantFor(const agent::ArtifactInfo& a, const net::CurveKeyPair& peer) {
  return {a.id, peer.name, peer.publicKey, "1", false};
}

}  // namespace

TEST(FetchRunner, FetchesAGrantedArtifactAndReportsProgressAndResult) {
  TempDir dir;
  Serving server(dir.path() / "build");
  auto info = server.plane->store().importFile(makeImage(dir.path(), 5 << 20), "img", "3", "{}");
  Receiving ctrl(dir.path() / "ctrl");
  server.plane->onGrant(grantFor(info, ctrl.keys));
  server.start();
  FetchRunner runner(ctrl.plane);
  RecordingReporter reporter;
  runner.run(fetchTask(info, server.endpoint(), server.keys.publicKey), reporter, {});
  ASSERT_FALSE(reporter.failed_) << reporter.failed_->message;
  ASSERT_TRUE(reporter.completed_);
  ASSERT_TRUE(reporter.completed_->artifact);
  EXPECT_EQ(reporter.completed_->artifact->id, info.id);
  EXPECT_EQ(reporter.completed_->artifact->sha512, info.sha512);
  EXPECT_EQ(reporter.completed_->artifact->manifestDigest, info.manifestDigest);
  auto inventory = runner.inventory();
  ASSERT_EQ(inventory.size(), 1u);
  EXPECT_EQ(inventory[0].imageVersion, "3");
  EXPECT_GT(runner.freeBytes(), 0u);
  auto path = ctrl.plane->store().pathOf(info.id);
  ASSERT_TRUE(path);
  EXPECT_EQ(fs::file_size(*path), info.size);
}

TEST(FetchRunner, AGrantThatArrivesLateIsPickedUp) {
  TempDir dir;
  Serving server(dir.path() / "build");
  auto info = server.plane->store().importFile(makeImage(dir.path(), 1 << 20), "img", "1");
  Receiving ctrl(dir.path() / "ctrl");
  server.start();
  std::jthread granter([&] {
    std::this_thread::sleep_for(1s);
    server.reactor.post([&] { server.plane->onGrant(grantFor(info, ctrl.keys)); });
  });
  FetchRunner runner(ctrl.plane);
  RecordingReporter reporter;
  const auto t0 = std::chrono::steady_clock::now();
  runner.run(fetchTask(info, server.endpoint(), server.keys.publicKey), reporter, {});
  ASSERT_FALSE(reporter.failed_) << reporter.failed_->message;
  EXPECT_TRUE(reporter.completed_);
  // Refused until the grant came, then retried on a fresh socket within the retry delay.
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 1s);
  EXPECT_LT(took, 3s);
}

TEST(FetchRunner, WithoutAGrantItFailsNamingTheCause) {
  TempDir dir;
  Serving server(dir.path() / "build");
  auto info = server.plane->store().importFile(makeImage(dir.path(), 1 << 20), "img", "1");
  Receiving ctrl(dir.path() / "ctrl", 2s);
  server.start();
  FetchRunner runner(ctrl.plane);
  RecordingReporter reporter;
  runner.run(fetchTask(info, server.endpoint(), server.keys.publicKey), reporter, {});
  ASSERT_TRUE(reporter.failed_);
  EXPECT_NE(reporter.failed_->message.find("refused our key"), std::string::npos)
      << reporter.failed_->message;
  EXPECT_FALSE(ctrl.plane->store().pathOf(info.id));
}

TEST(FetchRunner, AWrongManifestDigestIsRefused) {
  TempDir dir;
  Serving server(dir.path() / "build");
  auto info = server.plane->store().importFile(makeImage(dir.path(), 1 << 20), "img", "1");
  Receiving ctrl(dir.path() / "ctrl");
  server.plane->onGrant(grantFor(info, ctrl.keys));
  server.start();
  FetchRunner runner(ctrl.plane);
  RecordingReporter reporter;
  auto task = fetchTask(info, server.endpoint(), server.keys.publicKey);
  std::get<agent::FetchSpec>(task.kind).manifestDigest = std::string(64, 'f');
  runner.run(task, reporter, {});
  ASSERT_TRUE(reporter.failed_);
  EXPECT_FALSE(reporter.failed_->retryable);
  EXPECT_NE(reporter.failed_->message.find("not the expected"), std::string::npos)
      << reporter.failed_->message;
}

TEST(FetchRunner, AStopRequestEndsTheTaskAndKeepsWhatArrived) {
  TempDir dir;
  Serving server(dir.path() / "build");
  auto info = server.plane->store().importFile(makeImage(dir.path(), 8 << 20), "img", "1");
  Receiving ctrl(dir.path() / "ctrl");
  server.plane->onGrant(grantFor(info, ctrl.keys));
  server.start();
  FetchRunner runner(ctrl.plane);
  RecordingReporter reporter;
  std::stop_source stop;
  stop.request_stop();
  runner.run(fetchTask(info, server.endpoint(), server.keys.publicKey), reporter, stop.get_token());
  ASSERT_TRUE(reporter.failed_);
  EXPECT_TRUE(reporter.failed_->retryable);
  EXPECT_FALSE(reporter.completed_);
}

TEST(FetchRunner, RevokingOneJobsGrantLeavesAnotherJobsFetchWorking) {
  TempDir dir;
  Serving server(dir.path() / "build");
  auto info = server.plane->store().importFile(makeImage(dir.path(), 2 << 20), "img", "1");
  Receiving ctrl(dir.path() / "ctrl", 2s);
  // Two jobs move the same artifact over this hop to the same peer; job 7 is cancelled.
  auto grant = grantFor(info, ctrl.keys);
  grant.jobId = "7";
  server.plane->onGrant(grant);
  grant.jobId = "8";
  server.plane->onGrant(grant);
  grant.jobId = "7";
  grant.revoke = true;
  server.plane->onGrant(grant);
  server.start();
  FetchRunner runner(ctrl.plane);
  {
    RecordingReporter reporter;
    runner.run(fetchTask(info, server.endpoint(), server.keys.publicKey), reporter, {});
    ASSERT_FALSE(reporter.failed_)
        << "job 8's grant went with job 7's: " << reporter.failed_->message;
    ASSERT_TRUE(reporter.completed_);
  }
  // Job 8 ends too: now the peer holds no grant, and a fetch is refused.
  ASSERT_TRUE(ctrl.plane->store().remove(info.id));
  std::promise<void> applied;
  grant.jobId = "8";
  server.reactor.post([&] {
    server.plane->onGrant(grant);
    applied.set_value();
  });
  applied.get_future().wait();
  RecordingReporter reporter;
  runner.run(fetchTask(info, server.endpoint(), server.keys.publicKey), reporter, {});
  ASSERT_TRUE(reporter.failed_);
  EXPECT_NE(reporter.failed_->message.find("refused our key"), std::string::npos)
      << reporter.failed_->message;
}

TEST(FetchRunner, AFetchTaskWithAHostileIdIsRefusedBeforeAnythingHappens) {
  TempDir dir;
  Receiving ctrl(dir.path() / "ctrl");
  FetchRunner runner(ctrl.plane);
  agent::ArtifactInfo a;
  a.id = "delta-a-b/../../../victim";
  a.manifestDigest = std::string(64, 'a');
  a.imageName = "img";
  a.imageVersion = "1";
  RecordingReporter reporter;
  runner.run(fetchTask(a, "tcp://127.0.0.1:1", std::string(40, 'k')), reporter, {});
  ASSERT_TRUE(reporter.failed_);
  EXPECT_FALSE(reporter.failed_->retryable);
  EXPECT_NE(reporter.failed_->message.find("artifact id"), std::string::npos)
      << reporter.failed_->message;
  EXPECT_FALSE(fs::exists(dir.path() / "victim"));
  EXPECT_TRUE(fs::is_empty(dir.path() / "ctrl" / "objects"));
}
