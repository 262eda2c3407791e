#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/net/liveness.h"
#include "common/net/tcp_options.h"
#include "transfer/credit_window.h"
#include "transfer/manifest.h"
#include "transfer/transfer_wire.h"

namespace imgpipe::transfer {

// The receiver's side of one hop, as state machines with no sockets in them: the Fetcher
// (fetcher.h) feeds them connection events, decoded messages and clock ticks, and sends the
// frames they produce. Unit tests drive them the same way.

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using std::chrono::milliseconds;

struct LivenessOptions {
  milliseconds pingInterval{1000};
  // Connected but nothing heard this long: open a new connection. A floor: on a path whose
  // RTO says silence can last longer, the wait is longer (net::PeerLiveness).
  milliseconds deadAfter{5000};
  milliseconds stallAfter{3000};        // chunks asked for but none arrived: "stalled"
  milliseconds retryDelay{1000};        // after "not here yet" from the sender
  milliseconds authFailTimeout{60000};  // the sender keeps refusing our key: give up
  // Nothing learned from the sender this long — no manifest, no verified chunk, no delta — and
  // the conversation fails as transient, naming the state it was stuck in, so that the
  // coordinator reports it and runs the hop again (an upstream that answers "not here yet"
  // forever held a hop forever). Chunks of a live transfer arrive far more often than this.
  // The floor of that wait: a hop's own is noProgressDeadline(this, its size, its link's rate).
  milliseconds noProgressAfter{10 * 60 * 1000};
};

// How long a hop of `size` bytes on a link limited to `rateBps` (0: unlimited) may learn nothing:
// twice what the whole hop takes at the link's rate, and never less than `floor`. A slow link
// that is alive keeps to it even when a hop waits on an upstream that is as slow (cut-through):
// what trips it is an upstream that has stopped, not one that is slow.
milliseconds noProgressDeadline(milliseconds floor, std::uint64_t size, std::uint64_t rateBps);

// One outgoing message: a TransferMessage frame, optionally followed by a payload frame.
struct OutFrame {
  std::string header;
  std::string payload;
  bool hasPayload = false;
};

// The part every receiver conversation shares: connection state, ping/pong liveness, the
// "stalled / retrying / waiting for upstream" state shown to operators, and the outbox.
class Conversation {
 public:
  explicit Conversation(LivenessOptions options)
      : liveness_(options), peer_(options.pingInterval, options.deadAfter, TimePoint{}) {}
  virtual ~Conversation() = default;
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  void connected(TimePoint now);
  void disconnected(TimePoint now);
  void authFailed(TimePoint now);
  void received(proto::TransferMessage::Reader message, std::span<const std::byte> payload,
                TimePoint now);
  void tick(TimePoint now);
  // The sender broke the protocol (an identifier outside its grammar): the conversation fails
  // for good, and violated() tells callers not to try anything else with that sender.
  void violation(std::string why);
  bool violated() const { return violated_; }

  std::vector<OutFrame> takeOutgoing() { return std::exchange(outbox_, {}); }
  // True once when the conversation wants its connection replaced (a silent peer).
  bool takeReconnectRequest() { return std::exchange(reconnect_, false); }

  bool finished() const { return finished_; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // How the failure is to be handled (common/error.h).
  ErrorKind errorKind() const { return errorKind_; }
  // "" while healthy; "stalled", "retrying", "waiting for upstream".
  const std::string& state() const { return state_; }
  bool isConnected() const { return connected_; }
  // The path as TCP sees it on the connection (the Fetcher reads it from the kernel): its RTO
  // stretches the silence that counts as dead on a long path, and ACKs still arriving say the
  // path is up (net::PeerLiveness).
  void pathTiming(const net::PathTiming& timing, TimePoint now) {
    path_ = timing;
    peer_.pathRto(timing.rto());
    peer_.pathAcked(now - timing.sinceLastAck);
  }
  const std::optional<net::PathTiming>& path() const { return path_; }
  milliseconds deadAfter() const { return peer_.deadAfter(); }

 protected:
  virtual void onConnected(TimePoint now) = 0;
  virtual void onDisconnected(TimePoint /*now*/) {}
  virtual void onMessage(proto::TransferMessage::Reader message, std::span<const std::byte> payload,
                         TimePoint now) = 0;
  virtual void onTick(TimePoint /*now*/) {}

  void send(wire::Message& message);
  void sendWithPayload(wire::Message& message, std::string payload);
  void finish() { finished_ = true; }
  void fail(std::string why, ErrorKind kind = ErrorKind::failed);
  void setState(std::string state) { state_ = std::move(state); }
  TimePoint lastHeard() const { return peer_.lastHeard(); }
  void checkAuthFailures(TimePoint now);
  const LivenessOptions& liveness() const { return liveness_; }
  // Something was learned from the sender (the deadline above starts again).
  void progressed(TimePoint now) { lastProgress_ = now; }

 private:
  LivenessOptions liveness_;
  bool connected_ = false;
  bool finished_ = false;
  bool reconnect_ = false;
  ErrorKind errorKind_ = ErrorKind::failed;
  bool violated_ = false;
  std::string error_;
  std::string state_ = "retrying";  // until the first connection
  net::PeerLiveness peer_;          // pings sent, anything heard
  std::uint64_t pingNonce_ = 0;
  std::optional<net::PathTiming> path_;
  std::optional<TimePoint> authFailingSince_;
  std::optional<TimePoint> lastProgress_;  // from the first tick on
  TimePoint lastAuthFailure_{};
  std::vector<OutFrame> outbox_;
};

// Asks for an artifact's manifest and checks it against the trust anchor (the digest the
// coordinator handed out). "Not here yet" from a relay that is itself still waiting is retried.
class ManifestExchange : public Conversation {
 public:
  // expectedDigest empty: accept any well-formed manifest for this id (a delta's, whose trust
  // comes from the patched result having to match the target's manifest).
  ManifestExchange(std::string artifactId, std::string expectedDigest, LivenessOptions options);

  const std::string& encoded() const { return encoded_; }
  const Manifest& manifest() const { return *manifest_; }
  std::uint32_t upstreamChunks() const { return upstreamChunks_; }

 protected:
  void onConnected(TimePoint now) override;
  void onMessage(proto::TransferMessage::Reader message, std::span<const std::byte> payload,
                 TimePoint now) override;
  void onTick(TimePoint now) override;

 private:
  void request(TimePoint now);

  std::string artifactId_;
  std::string expectedDigest_;
  std::string encoded_;
  std::optional<Manifest> manifest_;
  std::uint32_t upstreamChunks_ = 0;
  std::optional<TimePoint> retryAt_;
};

// Where verified chunks go. The real one is an Artifact::Writer; tests use memory.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual bool has(std::uint32_t index) = 0;
  // Checks the content against the manifest; false (nothing stored) when it does not match.
  virtual bool write(std::uint32_t index, std::span<const std::byte> data) = 0;
  virtual std::vector<std::uint32_t> missing() = 0;
  virtual std::uint64_t bytesDone() = 0;
};

struct FetchOptions {
  LivenessOptions liveness;
  WindowOptions window;
  std::uint64_t rateLimit = 0;     // bytes/s; 0 = unlimited
  std::uint32_t maxBadCopies = 5;  // of one chunk, before the sender is given up on
  std::uint32_t batch = 64;        // indices per request message
};

// Pulls the missing chunks of one artifact whose manifest is known: requests by index in
// ascending order within the credit window (and the rate limit), verifies every chunk on
// arrival (the sink does), re-asks for what a broken connection lost, and finishes when the
// sink holds every chunk.
class FetchSession : public Conversation {
 public:
  FetchSession(std::string artifactId, Manifest manifest, ChunkSink& sink, FetchOptions options,
               TimePoint now = Clock::now());

  // Thread-safe: a chunk this session already stored was found damaged and dropped (a relay
  // serving it noticed); it is asked for again.
  void requeue(std::uint32_t index);

  std::uint64_t bytesDone() const { return bytesDone_; }
  std::uint64_t totalBytes() const { return manifest_.size; }
  std::uint64_t payloadBytesReceived() const { return payloadBytes_; }
  std::uint32_t badChunks() const { return badChunks_; }
  const CreditWindow& window() const { return window_; }

 protected:
  void onConnected(TimePoint now) override;
  void onDisconnected(TimePoint now) override;
  void onMessage(proto::TransferMessage::Reader message, std::span<const std::byte> payload,
                 TimePoint now) override;
  void onTick(TimePoint now) override;

 private:
  void issue(TimePoint now);
  void checkDone();
  void takeRequeued();

  std::string artifactId_;
  Manifest manifest_;
  ChunkSink& sink_;
  FetchOptions options_;
  CreditWindow window_;
  RateLimiter limiter_;
  std::set<std::uint32_t> pending_;
  std::map<std::uint32_t, std::uint32_t> badCopies_;
  std::uint64_t bytesDone_ = 0;
  std::uint64_t payloadBytes_ = 0;
  std::uint32_t badChunks_ = 0;
  TimePoint lastChunk_;
  std::optional<TimePoint> pausedUntil_;  // after "not here yet" from the sender
  std::mutex requeueMutex_;
  std::vector<std::uint32_t> requeued_;
};

// Asks the sender for a delta basis -> target. Uploads the basis signature when the sender lacks
// the basis, waits while the sender computes the delta, and ends with the delta's manifest, or
// with a refusal (then the whole artifact is fetched).
class DeltaExchange : public Conversation {
 public:
  // Produces the basis signature for a block length (called on demand, on the fetch thread).
  using SignatureFn = std::function<std::string(std::uint32_t blockLen)>;

  DeltaExchange(std::string targetId, std::string basisId, std::vector<DeltaFormat> formats,
                SignatureFn signature, LivenessOptions options);

  // The delta artifact's encoded manifest once the sender offers one.
  const std::optional<std::string>& deltaManifest() const { return deltaManifest_; }
  const std::string& refusal() const { return refusal_; }

 protected:
  void onConnected(TimePoint now) override;
  void onMessage(proto::TransferMessage::Reader message, std::span<const std::byte> payload,
                 TimePoint now) override;
  void onTick(TimePoint now) override;

 private:
  void ask(TimePoint now);

  std::string targetId_, basisId_;
  std::vector<DeltaFormat> formats_;
  SignatureFn signature_;
  std::optional<std::string> deltaManifest_;
  std::string refusal_;
  std::optional<TimePoint> askAt_;
  bool uploaded_ = false;
};

constexpr std::uint32_t kSignaturePart = 1 << 20;

}  // namespace imgpipe::transfer
