#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/net/curve_keys.h"
#include "common/net/reactor.h"
#include "common/net/socket_monitor.h"
#include "common/net/tcp_options.h"
#include "common/net/zap_handler.h"
#include "protocol/schema/transfer.capnp.h"
#include "transfer/artifact_store.h"
#include "transfer/connection_options.h"
#include "transfer/grant_table.h"
#include "transfer/key_budget.h"
#include "transfer/peer_outbox.h"

namespace imgpipe::transfer {

// What one peer can make the server hold. A peer is a key (its CURVE public key, the ZAP
// User-Id), whatever number of connections it opens: every limit here is per key. Defaults are
// what a receiver keeping to its credit window (at most 128 MiB in flight) never reaches.
struct ServerLimits {
  // Bytes queued for one key and not yet taken by its TCP connections. Enforced as the ROUTER's
  // per-connection high-water mark in messages, peerQueueBytes / the store's chunk size /
  // connectionsPerKey (at least 2): a send beyond it is refused by ZeroMQ (ROUTER_MANDATORY) and
  // the chunk waits, as an index only, in the connection's outbox until it drains.
  std::uint64_t peerQueueBytes = 16 << 20;
  // Chunk and manifest requests held per key across its connections: parked (not here yet)
  // plus owed (its queue is full).
  std::size_t peerRequests = 4096;
  // Connections per key that are served; messages on any further connection are ignored.
  std::size_t connectionsPerKey = 8;
  std::size_t deltaJobs = 2;                        // deltas computed at once
  std::uint64_t signatureMax = 256ull << 20;        // the largest basis signature accepted
  std::size_t signatureUploads = 4;                 // uploads (and deltas made from them) per key
  std::chrono::milliseconds uploadTimeout{60'000};  // an upload idle this long is removed
};

struct ServerOptions {
  std::string listen = "tcp://*:7701";
  ConnectionOptions connection;  // heartbeats and congestion control (reconnects: unused here)
  // A parked request nobody answered for this long is forgotten (its receiver has long since
  // reconnected and asked again).
  std::chrono::milliseconds parkTimeout{600'000};
  std::uint32_t deltaBlockSize = 4096;         // rdiff over the file (any artifact)
  std::uint32_t deltaContentBlockSize = 1024;  // rdiff over qcow2 cluster contents
  int deltaXzPreset = 3;
  double deltaMaxRatio = 0.6;  // a delta larger than this share of the image is not offered
  ServerLimits limits;
};

struct ServerStats {
  std::uint64_t chunksServed = 0;
  std::uint64_t bytesServed = 0;
  std::uint64_t corruptChunks = 0;  // found damaged on disk when about to serve them
  std::uint64_t refused = 0;        // requests for artifacts the peer holds no grant for
  std::uint64_t undecodable = 0;
  std::uint64_t invalidIds = 0;  // requests naming an identifier outside its grammar (refused)
  std::uint64_t deltasComputed = 0;
  std::uint64_t droppedRequests = 0;  // duplicates, and requests beyond a peer's limits
  std::uint64_t queueFull = 0;        // sends a peer's full queue refused (served later)
  std::uint64_t refusedUploads = 0;
  std::uint64_t refusedConnections = 0;  // messages ignored: their key has connectionsPerKey
};

// The artifact server of an agent: a ROUTER (CurveZMQ server) on the reactor thread, with its own
// ZAP handler that admits only keys granted some artifact (plus keys allowed everything, for the
// standalone tool). Answers manifests and chunk requests from the store, verifying each chunk as
// it reads it; parks requests for chunks the store does not hold yet and answers them the moment
// they arrive (cut-through at relays; several receivers of one relay each get every chunk as it
// lands: fan-out). Computes deltas on a worker thread: one between two artifacts held here is
// kept in the store as an artifact; one from a peer's uploaded signature lives in scratch with
// that upload, is served to that key only and goes with the upload.
// Must live on one context with no other ZAP handler. What a peer can make it hold is bounded
// (ServerLimits; docs/transfer.md, "Trust and limits"). Resource type.
class ArtifactServer {
 public:
  ArtifactServer(zmq::context_t& context, net::Reactor& reactor, ArtifactStore& store,
                 net::CurveKeyPair keys, ServerOptions options);
  ~ArtifactServer();
  ArtifactServer(const ArtifactServer&) = delete;
  ArtifactServer& operator=(const ArtifactServer&) = delete;

  // Reactor thread only (the agent session calls these there).
  // Grants are counted per job: a revoke removes only that job's grant.
  void grant(const std::string& artifactId, const std::string& peerKey, const std::string& peerName,
             const std::string& jobId);
  void revoke(const std::string& artifactId, const std::string& peerKey, const std::string& jobId);
  void allowAll(const std::string& peerKey, const std::string& peerName);
  const GrantTable& grants() const { return grants_; }

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
  // A basis signature being uploaded into the store's scratch space, then the delta made from it
  // (in scratch too, never in the store); both files go with it.
  struct SignatureUpload {
    SignatureUpload(const StoreDir& dir, std::string name, std::string peerKey);
    ~SignatureUpload();
    SignatureUpload(const SignatureUpload&) = delete;
    SignatureUpload& operator=(const SignatureUpload&) = delete;
    const StoreDir& dir;
    std::string name;
    std::string peerKey;
    UniqueFd fd;
    std::uint64_t total = 0;
    std::uint64_t received = 0;
    std::uint32_t blockSize = 0;
    std::chrono::steady_clock::time_point lastPart;
    bool inUse = false;               // a delta is being computed from it
    std::shared_ptr<Artifact> delta;  // once computed: served to peerKey only
  };
  // A chunk message the peer's full queue refused: sent before anything else owed to it.
  struct HeldChunk {
    std::string header;
    zmq::message_t payload;
  };
  // What the server holds for one admitted connection (routing id); its requests are counted
  // against its key in budget_.
  struct Peer {
    explicit Peer(std::size_t capacity) : owed(capacity) {}
    std::optional<HeldChunk> held;
    PeerOutbox owed;
  };
  enum class SendResult { sent, full, gone };

  void onReadable();
  void handle(const std::string& routingId, const std::string& peerKey,
              const zmq::message_t& header, const zmq::message_t* payload);
  bool authorized(const std::string& peerKey, const std::string& artifactId) const;
  std::string peerName(const std::string& peerKey) const;
  void reply(const std::string& routingId, std::string header);
  SendResult sendChunk(const std::string& routingId, const std::string& header,
                       zmq::message_t& payload);
  Peer& peer(const std::string& routingId);
  // The connection is gone: its requests, parked or owed, and its slot go with it.
  void forget(const std::string& routingId);
  // What `key` is served under `id`: the store's artifact, else a delta made from that key's own
  // uploaded signature.
  std::shared_ptr<Artifact> find(const std::string& key, const std::string& id);
  void pump();
  void schedulePump();
  void unpark(const std::string& routingId);
  // Removes the parked requests (manifests and chunks) `drop` says, and what is left empty.
  void eraseParked(const std::function<bool(const Parked&)>& drop);
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
                  bool qcow2Ok, std::optional<std::pair<std::string, std::string>> upload);
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
  net::CongestionChoice congestion_;
  std::unique_ptr<net::SocketMonitor> monitor_;  // applies congestion_ to each connection
  std::uint64_t storeToken_ = 0;
  net::Reactor::TimerId expiryTimer_ = 0;
  // Guards against callbacks posted by the store or a delta worker outliving the server.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  GrantTable grants_;
  KeyBudget budget_;
  std::map<std::string, Peer> peers_;  // routing id -> what is held for it
  net::Reactor::TimerId pumpTimer_ = 0;
  std::map<std::string, std::map<std::uint32_t, std::vector<Parked>>> parked_;
  std::map<std::string, std::vector<Parked>> parkedManifests_;  // asked before it was here
  RepairHook repair_;

  std::map<std::string, std::jthread> deltaWorkers_;
  std::map<std::string, std::string> deltaFailures_;
  // (peer key, delta id) -> upload: one peer's upload is never another's.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<SignatureUpload>> uploads_;
  std::uint64_t uploadCounter_ = 0;
  ServerStats stats_;
};

}  // namespace imgpipe::transfer
