#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/net/curve_keys.h"
#include "common/net/reactor.h"
#include "common/net/zap_handler.h"
#include "protocol/schema/transfer.capnp.h"
#include "transfer/artifact_store.h"

namespace imgpipe::transfer {

struct ServerOptions {
  std::string listen = "tcp://*:7701";
  std::chrono::milliseconds heartbeatInterval{1000};
  std::chrono::milliseconds heartbeatTimeout{3000};
  // A parked request nobody answered for this long is forgotten (its receiver has long since
  // reconnected and asked again).
  std::chrono::milliseconds parkTimeout{600'000};
  std::uint32_t deltaBlockSize = 4096;         // rdiff over the file (any artifact)
  std::uint32_t deltaContentBlockSize = 1024;  // rdiff over qcow2 cluster contents
  int deltaXzPreset = 3;
  double deltaMaxRatio = 0.6;  // a delta larger than this share of the image is not offered
};

struct ServerStats {
  std::uint64_t chunksServed = 0;
  std::uint64_t bytesServed = 0;
  std::uint64_t corruptChunks = 0;  // found damaged on disk when about to serve them
  std::uint64_t refused = 0;        // requests for artifacts the peer holds no grant for
  std::uint64_t undecodable = 0;
  std::uint64_t deltasComputed = 0;
};

// The artifact server of an agent: a ROUTER (CurveZMQ server) on the reactor thread, with its own
// ZAP handler that admits only keys granted some artifact (plus keys allowed everything, for the
// standalone tool). Answers manifests and chunk requests from the store, verifying each chunk as
// it reads it; parks requests for chunks the store does not hold yet and answers them the moment
// they arrive (cut-through at relays; several receivers of one relay each get every chunk as it
// lands: fan-out). Computes deltas on a worker thread and keeps them in the store as artifacts.
// Must live on one context with no other ZAP handler. Resource type.
class ArtifactServer {
 public:
  ArtifactServer(zmq::context_t& context, net::Reactor& reactor, ArtifactStore& store,
                 net::CurveKeyPair keys, ServerOptions options);
  ~ArtifactServer();
  ArtifactServer(const ArtifactServer&) = delete;
  ArtifactServer& operator=(const ArtifactServer&) = delete;

  // Reactor thread only (the agent session calls these there).
  void grant(const std::string& artifactId, const std::string& peerKey,
             const std::string& peerName);
  void revoke(const std::string& artifactId, const std::string& peerKey);
  void allowAll(const std::string& peerKey, const std::string& peerName);

  // Called (on the reactor thread) when a complete artifact lost a chunk to damage, so the owner
  // can fetch it again; without a hook, requests for the chunk are refused.
  using RepairHook = std::function<bool(const std::shared_ptr<Artifact>&, std::uint32_t index)>;
  void setRepairHook(RepairHook hook) { repair_ = std::move(hook); }

  std::string endpoint() const;  // the bound endpoint (the port, when listening on :0)
  const ServerStats& stats() const { return stats_; }

 private:
  struct Parked {
    std::string routingId;
    std::chrono::steady_clock::time_point since;
  };
  struct SignatureUpload {
    std::filesystem::path file;
    std::uint64_t total = 0;
    std::uint64_t received = 0;
    std::uint32_t blockSize = 0;
  };

  void onReadable();
  void handle(const std::string& routingId, const std::string& peerKey,
              const zmq::message_t& header, const zmq::message_t* payload);
  bool authorized(const std::string& peerKey, const std::string& artifactId) const;
  void reply(const std::string& routingId, std::string header);
  void replyUnavailable(const std::string& routingId, const std::string& artifactId,
                        const std::string& reason, bool retryable);
  void replyManifest(const std::string& routingId, const Artifact& artifact);
  void serve(const std::string& routingId, const std::shared_ptr<Artifact>& artifact,
             std::uint32_t index, std::chrono::steady_clock::time_point parkedSince);
  void park(const std::string& routingId, const std::string& artifactId, std::uint32_t index,
            std::chrono::steady_clock::time_point since);
  void onStoreEvent(const StoreEvent& event);
  void expireParked();
  void openDelta(const std::string& routingId, const std::string& peerKey,
                 const std::string& targetId, const std::string& basisId, bool qcow2Ok);
  void signaturePart(const std::string& routingId, const std::string& peerKey,
                     const std::string& targetId, const std::string& basisId, std::uint64_t offset,
                     std::uint64_t total, std::uint32_t blockSize,
                     std::span<const std::byte> bytes);
  void startDelta(const std::string& deltaId, const std::shared_ptr<Artifact>& target,
                  const std::shared_ptr<Artifact>& basis, std::filesystem::path signature,
                  bool qcow2Ok);
  void replyDelta(const std::string& routingId, const std::string& targetId,
                  const std::string& basisId,
                  const std::function<void(proto::DeltaReply::Builder)>& fill);

  zmq::context_t& context_;
  net::Reactor& reactor_;
  ArtifactStore& store_;
  net::CurveKeyPair keys_;
  ServerOptions options_;
  std::unique_ptr<net::ZapHandler> zap_;
  zmq::socket_t socket_;
  std::uint64_t storeToken_ = 0;
  net::Reactor::TimerId expiryTimer_ = 0;
  // Guards against callbacks posted by the store or a delta worker outliving the server.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::map<std::string, std::map<std::string, std::string>> grants_;  // artifact -> key -> name
  std::map<std::string, std::string> allowAll_;                       // key -> name
  std::map<std::string, std::map<std::uint32_t, std::vector<Parked>>> parked_;
  std::map<std::string, std::vector<Parked>> parkedManifests_;  // asked before it was here
  RepairHook repair_;

  std::map<std::string, std::jthread> deltaWorkers_;
  std::map<std::string, std::string> deltaFailures_;
  std::map<std::string, SignatureUpload> uploads_;
  ServerStats stats_;
};

}  // namespace imgpipe::transfer
