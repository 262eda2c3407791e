#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "common/agent/task_runner.h"
#include "common/net/curve_keys.h"
#include "common/net/reactor.h"
#include "transfer/artifact_server.h"
#include "transfer/artifact_store.h"
#include "transfer/fetcher.h"
#include "transfer/transfer_config.h"

namespace imgpipe::transfer {

struct FetchRequest {
  std::string artifactId;
  std::string manifestDigest;  // the trust anchor; must match what upstream offers
  Upstream upstream;
  std::uint64_t rateLimit = 0;  // 0: the configured default
  std::uint64_t size = 0;       // the artifact's, as the coordinator knows it (0: unknown)
  bool allowDelta = true;
  std::string jobId;  // for log lines
};

struct FetchProgress {
  std::string phase;  // "manifest", "delta", "patch", "transfer", "verify"
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  std::uint64_t rateBps = 0;
  std::uint32_t etaS = 0;
  std::uint32_t attempt = 0;  // reconnections so far
  std::string state;          // "", "stalled", "retrying", "waiting for upstream"
};

struct FetchOutcome {
  std::shared_ptr<Artifact> artifact;
  bool alreadyHere = false;
  bool viaDelta = false;
  std::string deltaNote;  // why no delta was used, or its size
  std::uint64_t deltaBytes = 0;
  std::uint32_t reconnects = 0;
  std::string congestion;       // this end's TCP congestion control, as the kernel reports it
  double rttMs = 0;             // the path's smoothed round trip, as TCP measured it (0: unknown)
  double deadAfterMs = 0;       // the silence that counted as dead on that path
  std::uint32_t badChunks = 0;  // chunks that arrived with the wrong content (and were refetched)
  // Chunk payload bytes this fetch received, duplicates and bad copies included: equal to the
  // missing bytes when nothing already verified was sent again (across reconnects too).
  std::uint64_t chunkBytesReceived = 0;
  double seconds = 0;
};

// The transfer plane of one agent: its store, its artifact server (when it serves), and fetches
// into the store. Relays, build agents, glance agents and the imgpipe-transfer tool all use it.
class TransferPlane {
 public:
  // `serve`: bind the artifact server (config.listen) on `reactor`.
  TransferPlane(TransferConfig config, zmq::context_t& context, net::Reactor& reactor,
                net::CurveKeyPair keys, bool serve);
  ~TransferPlane();
  TransferPlane(const TransferPlane&) = delete;
  TransferPlane& operator=(const TransferPlane&) = delete;

  ArtifactStore& store() { return *store_; }
  ArtifactServer* server() { return server_.get(); }
  const TransferConfig& config() const { return config_; }
  std::string advertisedEndpoint() const { return server_ ? config_.advertise : ""; }

  // Fetches an artifact from upstream into the store, on the calling thread. Resumes a partial
  // one, tries a delta when an older version of the image is here, and returns when the artifact
  // is complete and verified. Throws Error (its kind says whether to try again;
  // InsufficientSpace for a full disk).
  FetchOutcome fetch(const FetchRequest& request, std::stop_token stop,
                     const std::function<void(const FetchProgress&)>& progress = {});

  // A grant (or revocation) from the coordinator for this agent's artifact server. Call it from
  // TaskRunner::onGrant (the session thread, which is the reactor thread the server lives on).
  void onGrant(const agent::GrantSpec& grant);

 private:
  struct Active;
  bool repair(const std::shared_ptr<Artifact>& artifact, std::uint32_t index);
  bool tryDelta(const FetchRequest& request, Fetcher& fetcher, Artifact::Writer& writer,
                const std::shared_ptr<Artifact>& basis, std::stop_token stop,
                const std::function<void(const FetchProgress&)>& report, FetchOutcome& outcome);

  TransferConfig config_;
  zmq::context_t& context_;
  net::Reactor& reactor_;
  net::CurveKeyPair keys_;
  std::unique_ptr<ArtifactStore> store_;
  std::unique_ptr<ArtifactServer> server_;

  std::mutex activeMutex_;
  std::map<std::string, FetchSession*> active_;  // artifact id -> the session filling it
  std::stop_source repairStop_;
  std::map<std::string, std::jthread> repairs_;
};

// The TaskRunner for FetchSpec tasks. The glance agent delegates its fetch tasks to one.
class FetchRunner : public agent::TaskRunner {
 public:
  explicit FetchRunner(std::shared_ptr<TransferPlane> plane) : plane_(std::move(plane)) {}

  void run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
           std::stop_token stop) override;
  void onGrant(const agent::GrantSpec& grant) override;
  std::vector<agent::ArtifactInfo> inventory() override { return plane_->store().inventory(); }
  std::uint64_t freeBytes() override { return plane_->store().freeBytes(); }

  TransferPlane& plane() { return *plane_; }

 private:
  std::shared_ptr<TransferPlane> plane_;
};

}  // namespace imgpipe::transfer
