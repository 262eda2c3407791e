#include "transfer/fetch_session.h"

#include <algorithm>

#include "common/units.h"
#include "transfer/credit_window.h"

namespace imgpipe::transfer {

using Body = proto::TransferMessage::Body;

// --- Conversation -----------------------------------------------------------------------------

void Conversation::connected(TimePoint now) {
  connected_ = true;
  peer_.restart(now);
  authFailingSince_.reset();
  state_.clear();
  if (!finished_ && !failed()) onConnected(now);
}

void Conversation::disconnected(TimePoint now) {
  if (!connected_) return;
  connected_ = false;
  state_ = "retrying";
  if (!finished_ && !failed()) onDisconnected(now);
}

void Conversation::authFailed(TimePoint now) {
  state_ = "retrying";
  if (!authFailingSince_) authFailingSince_ = now;
  lastAuthFailure_ = now;
  checkAuthFailures(now);
}

void Conversation::checkAuthFailures(TimePoint now) {
  if (!authFailingSince_) return;
  // The grant for our key may reach the sender a moment after our task reached us: keep trying
  // (ZeroMQ does not retry a refused handshake by itself) until the timeout.
  if (now - *authFailingSince_ > liveness_.authFailTimeout) {
    fail("the sender refused our key in the CURVE handshake for " +
             std::to_string(liveness_.authFailTimeout.count() / 1000) +
             " s: it has no grant for us (or we hold the wrong server key)",
         ErrorKind::refused);
    return;
  }
  if (now - lastAuthFailure_ >= liveness_.retryDelay) {
    lastAuthFailure_ = now;
    reconnect_ = true;
  }
}

void Conversation::received(proto::TransferMessage::Reader message,
                            std::span<const std::byte> payload, TimePoint now) {
  peer_.heard(now);
  if (finished_ || failed()) return;
  if (message.getBody().which() == Body::PONG) return;
  onMessage(message, payload, now);
}

milliseconds noProgressDeadline(milliseconds floor, std::uint64_t size, std::uint64_t rateBps) {
  if (rateBps == 0) return floor;
  // In double: a 1 TiB artifact at 1 byte/s neither overflows nor wraps (capped at a year).
  const double hopMs = std::min(2000.0 * static_cast<double>(size) / static_cast<double>(rateBps),
                                365.0 * 24 * 3600 * 1000);
  return std::max(floor, milliseconds(static_cast<milliseconds::rep>(hopMs)));
}

void Conversation::violation(std::string why) {
  if (finished_ || failed()) return;
  violated_ = true;
  fail(std::move(why));
}

void Conversation::tick(TimePoint now) {
  if (finished_ || failed()) return;
  if (!lastProgress_) lastProgress_ = now;
  if (now - *lastProgress_ > liveness_.noProgressAfter) {
    fail("no progress from the sender for " +
             formatDuration(std::chrono::duration_cast<milliseconds>(now - *lastProgress_)) + " (" +
             (state_.empty() ? std::string("receiving") : state_) + "; transfer.no_progress_after)",
         ErrorKind::transient);
    return;
  }
  if (!connected_) checkAuthFailures(now);
  if (connected_) {
    if (peer_.expired(now)) {
      // Heartbeats should have caught a dead link; this catches a live link to a stuck peer.
      reconnect_ = true;
      connected_ = false;
      state_ = "retrying";
      onDisconnected(now);
      return;
    }
    if (peer_.heartbeatDue(now)) {
      peer_.sent(now);
      wire::Message m;
      m.body().setPing(++pingNonce_);
      send(m);
    }
  }
  onTick(now);
}

void Conversation::send(wire::Message& message) {
  outbox_.push_back(OutFrame{message.bytes(), {}, false});
}

void Conversation::sendWithPayload(wire::Message& message, std::string payload) {
  outbox_.push_back(OutFrame{message.bytes(), std::move(payload), true});
}

void Conversation::fail(std::string why, ErrorKind kind) {
  if (failed()) return;
  error_ = std::move(why);
  errorKind_ = kind;
}

// --- ManifestExchange -------------------------------------------------------------------------

ManifestExchange::ManifestExchange(std::string artifactId, std::string expectedDigest,
                                   LivenessOptions options)
    : Conversation(options),
      artifactId_(std::move(artifactId)),
      expectedDigest_(std::move(expectedDigest)) {}

void ManifestExchange::request(TimePoint) {
  retryAt_.reset();
  wire::Message m;
  m.body().initGetManifest().setArtifactId(artifactId_);
  send(m);
}

void ManifestExchange::onConnected(TimePoint now) {
  request(now);
}

void ManifestExchange::onTick(TimePoint now) {
  if (retryAt_ && now >= *retryAt_ && isConnected()) request(now);
}

void ManifestExchange::onMessage(proto::TransferMessage::Reader message, std::span<const std::byte>,
                                 TimePoint now) {
  auto body = message.getBody();
  if (body.which() == Body::UNAVAILABLE) {
    auto u = body.getUnavailable();
    if (wire::toString(u.getArtifactId()) != artifactId_) return;
    if (!u.getRetryable())
      return fail("the sender has no artifact " + artifactId_ + ": " +
                  wire::toString(u.getReason()));
    setState("waiting for upstream");
    retryAt_ = now + liveness().retryDelay;
    return;
  }
  if (body.which() != Body::MANIFEST) return;
  auto r = body.getManifest();
  if (wire::toString(r.getArtifactId()) != artifactId_) return;
  std::string encoded = wire::toString(r.getEncoded());
  if (!expectedDigest_.empty() && manifestDigest(encoded) != expectedDigest_)
    return fail("the manifest the sender offers for " + artifactId_ + " has digest " +
                manifestDigest(encoded) + ", not the expected " + expectedDigest_ +
                "; refusing it");
  std::string why;
  auto m = decodeManifest(encoded, &why);
  if (!m) return fail("the sender's manifest for " + artifactId_ + " is invalid: " + why);
  if (m->id() != artifactId_)
    return fail("the sender's manifest describes " + m->id() + ", not " + artifactId_);
  encoded_ = std::move(encoded);
  manifest_ = std::move(*m);
  upstreamChunks_ = r.getChunksAvailable();
  finish();
}

// --- FetchSession -----------------------------------------------------------------------------

FetchSession::FetchSession(std::string artifactId, Manifest manifest, ChunkSink& sink,
                           FetchOptions options, TimePoint now)
    : Conversation(options.liveness),
      artifactId_(std::move(artifactId)),
      manifest_(std::move(manifest)),
      sink_(sink),
      options_(options),
      window_(options.window),
      limiter_(options.rateLimit,
               std::max<std::uint64_t>(manifest_.chunkSize, options.rateLimit / 10), now),
      lastChunk_(now) {
  for (auto i : sink_.missing())
    pending_.insert(i);
  bytesDone_ = sink_.bytesDone();
  checkDone();
}

void FetchSession::requeue(std::uint32_t index) {
  std::lock_guard lock(requeueMutex_);
  requeued_.push_back(index);
}

void FetchSession::takeRequeued() {
  std::vector<std::uint32_t> taken;
  {
    std::lock_guard lock(requeueMutex_);
    taken.swap(requeued_);
  }
  for (auto i : taken)
    if (!window_.isOutstanding(i) && !sink_.has(i)) pending_.insert(i);
  if (!taken.empty()) bytesDone_ = sink_.bytesDone();
}

void FetchSession::onConnected(TimePoint now) {
  lastChunk_ = now;
  issue(now);
}

void FetchSession::onDisconnected(TimePoint) {
  // Whatever was asked for on the old connection is lost with it: ask again after reconnecting.
  for (auto i : window_.outstandingIndices())
    if (!sink_.has(i)) pending_.insert(i);
  window_.forgetOutstanding();
}

void FetchSession::issue(TimePoint now) {
  if (!isConnected() || finished() || failed()) return;
  if (pausedUntil_) {
    if (now < *pausedUntil_) return;
    pausedUntil_.reset();
  }
  std::vector<std::uint32_t> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    wire::Message m;
    auto req = m.body().initGetChunks();
    req.setArtifactId(artifactId_);
    auto list = req.initIndices(static_cast<unsigned>(batch.size()));
    for (unsigned i = 0; i < batch.size(); ++i)
      list.set(i, batch[i]);
    send(m);
    batch.clear();
  };
  while (!pending_.empty()) {
    const std::uint32_t index = *pending_.begin();
    if (sink_.has(index)) {
      pending_.erase(pending_.begin());
      continue;
    }
    const std::uint64_t len = manifest_.chunkLength(index);
    if (!window_.canRequest(len)) break;
    if (!limiter_.tryTake(len, now)) break;
    pending_.erase(pending_.begin());
    window_.onRequest(index, len, now);
    batch.push_back(index);
    if (batch.size() >= options_.batch) flush();
  }
  flush();
}

void FetchSession::onMessage(proto::TransferMessage::Reader message,
                             std::span<const std::byte> payload, TimePoint now) {
  auto body = message.getBody();
  if (body.which() == Body::UNAVAILABLE) {
    auto u = body.getUnavailable();
    if (wire::toString(u.getArtifactId()) != artifactId_) return;
    if (!u.getRetryable())
      return fail("the sender cannot serve " + artifactId_ + ": " + wire::toString(u.getReason()));
    // The sender lost the artifact for now (a relay restarting its store): ask again later.
    setState("waiting for upstream");
    onDisconnected(now);
    pausedUntil_ = now + liveness().retryDelay;
    return;
  }
  if (body.which() != Body::CHUNK) return;
  auto h = body.getChunk();
  if (wire::toString(h.getArtifactId()) != artifactId_) return;
  const std::uint32_t index = h.getIndex();
  if (index >= manifest_.chunkCount()) return;
  window_.onArrival(index, now);
  payloadBytes_ += payload.size();
  lastChunk_ = now;
  setState("");
  if (!sink_.has(index)) {
    if (sink_.write(index, payload)) {
      pending_.erase(index);
      bytesDone_ = sink_.bytesDone();
      progressed(now);
    } else {
      ++badChunks_;
      if (++badCopies_[index] >= options_.maxBadCopies)
        return fail("the sender sent chunk " + std::to_string(index) + " of " + artifactId_ + " " +
                    std::to_string(options_.maxBadCopies) +
                    " times with content that does not match the manifest");
      pending_.insert(index);
    }
  } else {
    pending_.erase(index);
  }
  checkDone();
  issue(now);
}

void FetchSession::onTick(TimePoint now) {
  takeRequeued();
  if (isConnected() && window_.outstanding() > 0 && now - lastChunk_ > liveness().stallAfter) {
    // Pongs still arriving means the sender is alive but has nothing to send: a relay waiting
    // for its own upstream. Nothing heard at all is a stall (a link that died quietly).
    setState(now - lastHeard() < liveness().stallAfter ? "waiting for upstream" : "stalled");
  }
  issue(now);
  checkDone();
}

void FetchSession::checkDone() {
  if (!pending_.empty() || window_.outstanding() != 0) return;
  // Trust the sink, not our bookkeeping: a chunk may have been dropped since it was written.
  auto missing = sink_.missing();
  if (missing.empty()) {
    setState("");
    finish();
    return;
  }
  for (auto i : missing)
    pending_.insert(i);
}

// --- DeltaExchange ----------------------------------------------------------------------------

DeltaExchange::DeltaExchange(std::string targetId, std::string basisId,
                             std::vector<DeltaFormat> formats, SignatureFn signature,
                             LivenessOptions options)
    : Conversation(options),
      targetId_(std::move(targetId)),
      basisId_(std::move(basisId)),
      formats_(std::move(formats)),
      signature_(std::move(signature)) {}

void DeltaExchange::ask(TimePoint) {
  askAt_.reset();
  wire::Message m;
  auto req = m.body().initOpenDelta();
  req.setTargetId(targetId_);
  req.setBasisId(basisId_);
  auto list = req.initFormats(static_cast<unsigned>(formats_.size()));
  for (unsigned i = 0; i < formats_.size(); ++i)
    list.set(i, deltaFormatToProto(formats_[i]));
  send(m);
}

void DeltaExchange::onConnected(TimePoint now) {
  ask(now);
}

void DeltaExchange::onTick(TimePoint now) {
  if (askAt_ && now >= *askAt_ && isConnected()) ask(now);
}

void DeltaExchange::onMessage(proto::TransferMessage::Reader message, std::span<const std::byte>,
                              TimePoint now) {
  auto body = message.getBody();
  if (body.which() == Body::UNAVAILABLE) {
    refusal_ = wire::toString(body.getUnavailable().getReason());
    finish();
    return;
  }
  if (body.which() != Body::DELTA_REPLY) return;
  auto r = body.getDeltaReply();
  if (wire::toString(r.getTargetId()) != targetId_ || wire::toString(r.getBasisId()) != basisId_)
    return;
  switch (r.which()) {
    case proto::DeltaReply::READY:
      deltaManifest_ = wire::toString(r.getReady().getEncoded());
      finish();
      return;
    case proto::DeltaReply::PENDING:
      setState("waiting for upstream");
      askAt_ = now + std::chrono::milliseconds(250);
      return;
    case proto::DeltaReply::NEED_SIGNATURE: {
      if (uploaded_) {  // asked twice: the upload did not take; do not loop
        refusal_ = "the sender asked for the basis signature again";
        finish();
        return;
      }
      const std::uint32_t blockLen = r.getNeedSignature();
      std::string sig = signature_(blockLen);
      for (std::uint64_t off = 0; off < sig.size() || off == 0; off += kSignaturePart) {
        wire::Message m;
        auto part = m.body().initSignaturePart();
        part.setTargetId(targetId_);
        part.setBasisId(basisId_);
        part.setOffset(off);
        part.setTotalSize(sig.size());
        part.setBlockSize(blockLen);
        sendWithPayload(m, sig.substr(off, kSignaturePart));
        if (sig.empty()) break;
      }
      uploaded_ = true;
      ask(now);
      return;
    }
    case proto::DeltaReply::UNAVAILABLE:
      refusal_ = wire::toString(r.getUnavailable());
      finish();
      return;
  }
}

}  // namespace imgpipe::transfer
