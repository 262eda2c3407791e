#include "transfer/artifact_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/error.h"
#include "common/net/tcp_options.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "protocol/ids.h"
#include "transfer/delta.h"
#include "transfer/transfer_wire.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
using Body = proto::TransferMessage::Body;
using SteadyClock = std::chrono::steady_clock;

namespace {

// How often the outboxes of peers whose queue was full are retried. A ROUTER says nothing when
// one peer's pipe drains (its POLLOUT is always set), so the server looks: one attempt per
// blocked peer per period, which costs nothing while no peer is blocked.
constexpr std::chrono::milliseconds kPumpPeriod{2};
}  // namespace

ArtifactServer::SignatureUpload::SignatureUpload(const StoreDir& d, std::string n, std::string k)
    : dir(d), name(std::move(n)), peerKey(std::move(k)) {
  fd = dir.open(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
}

ArtifactServer::SignatureUpload::~SignatureUpload() {
  fd.reset();
  delta.reset();
  try {
    dir.unlink(name);
    dir.removeTree(name + ".delta");
  } catch (const std::exception& e) {
    spdlog::warn("artifact server: {}", e.what());
  }
}

ArtifactServer::ArtifactServer(zmq::context_t& context, net::Reactor& reactor, ArtifactStore& store,
                               net::CurveKeyPair keys, ServerOptions options)
    : context_(context),
      reactor_(reactor),
      store_(store),
      keys_(std::move(keys)),
      options_(std::move(options)),
      socket_(context, zmq::socket_type::router),
      congestion_(options_.connection.congestion),
      budget_(options_.limits.connectionsPerKey, options_.limits.peerRequests) {
  // Without a ZAP handler CURVE accepts any client key; this one admits keys that hold a grant.
  zap_ = std::make_unique<net::ZapHandler>(
      context_, reactor_,
      [this](const std::string& key, const std::string&) -> std::optional<net::PeerIdentity> {
        if (grants_.knows(key)) return net::PeerIdentity{key, "transfer"};
        return std::nullopt;
      });
  net::configureCurveServer(socket_, keys_.secretKey);
  net::configureHeartbeats(socket_, options_.connection.heartbeatInterval,
                           options_.connection.heartbeatTimeout);
  // A reply to a receiver that has gone away fails instead of vanishing silently, and a send to a
  // peer whose queue is full fails (EAGAIN) instead of blocking or dropping: the chunk then
  // waits in that peer's outbox. The high-water mark is per connection (per pipe), in messages:
  // a key's share of peerQueueBytes for each of its connectionsPerKey connections, so that with
  // the store's chunk size it bounds what one key can make this process hold, whatever it asks
  // for, however slowly it reads and however many connections it opens.
  socket_.set(zmq::sockopt::router_mandatory, 1);
  const std::uint64_t chunk = std::max<std::uint32_t>(1, store_.options().chunkSize);
  const auto hwm =
      std::max<std::uint64_t>(2, options_.limits.peerQueueBytes / chunk /
                                     std::max<std::size_t>(1, options_.limits.connectionsPerKey));
  socket_.set(zmq::sockopt::sndhwm, static_cast<int>(std::min<std::uint64_t>(hwm, 1 << 20)));
  socket_.set(zmq::sockopt::sndbuf, 4 << 20);
  // What a connection's unread requests can hold here (ZeroMQ's default is 1000 messages of up
  // to the frame limit each); beyond it ZeroMQ stops reading that connection, which pushes back
  // on its sender only.
  socket_.set(zmq::sockopt::rcvhwm, 64);
  // A frame larger than any request is refused before it is read: the connection is dropped.
  socket_.set(zmq::sockopt::maxmsgsize, wire::kMaxRequestFrame);
  // The chunks flow from here: this end's congestion control is the one that matters. Set as
  // each connection is accepted, before the CURVE handshake's round trips are over.
  monitor_ = std::make_unique<net::SocketMonitor>(
      context_, reactor_, socket_, [](net::SocketMonitor::Event, const std::string&) {},
      [this](int fd) {
        if (auto why = congestion_.apply(fd); !why.empty())
          spdlog::warn("artifact server: {}; connections use the host's default", why);
      });
  socket_.bind(options_.listen);
  reactor_.addSocket(socket_, [this] { onReadable(); });
  std::weak_ptr<bool> alive = alive_;
  storeToken_ = store_.subscribe([this, alive](const StoreEvent& event) {
    reactor_.post([this, alive, event] {
      if (!alive.expired()) onStoreEvent(event);
    });
  });
  expiryTimer_ = reactor_.every(std::chrono::seconds(1), [this] { expireParked(); });
  spdlog::info("artifact server listening on {}", endpoint());
}

ArtifactServer::~ArtifactServer() {
  store_.unsubscribe(storeToken_);
  reactor_.cancel(expiryTimer_);
  if (pumpTimer_) reactor_.cancel(pumpTimer_);
  reactor_.removeSocket(socket_);
  deltaWorkers_.clear();  // joins: a delta being computed finishes first
  uploads_.clear();
  alive_.reset();
}

std::string ArtifactServer::endpoint() const {
  return socket_.get(zmq::sockopt::last_endpoint);
}

void ArtifactServer::grant(const std::string& artifactId, const std::string& peerKey,
                           const std::string& peerName, const std::string& jobId) {
  grants_.grant(artifactId, peerKey, peerName, jobId);
  spdlog::info("artifact server: {} may fetch {} (job {}; {} job(s) hold it)", peerName,
               ids::shortForm(artifactId), jobId, grants_.jobs(artifactId, peerKey));
}

void ArtifactServer::revoke(const std::string& artifactId, const std::string& peerKey,
                            const std::string& jobId) {
  const bool last = grants_.revoke(artifactId, peerKey, jobId);
  spdlog::info("artifact server: job {} no longer needs {} for {}{}", jobId,
               ids::shortForm(artifactId), grants_.nameOf(peerKey),
               last ? "; grant removed" : "; other jobs may still hold it");
}

void ArtifactServer::allowAll(const std::string& peerKey, const std::string& peerName) {
  grants_.allowAll(peerKey, peerName);
}

bool ArtifactServer::authorized(const std::string& key, const std::string& artifactId) const {
  return grants_.allows(key, artifactId);
}

std::string ArtifactServer::peerName(const std::string& key) const {
  return grants_.nameOf(key);
}

ArtifactServer::Peer& ArtifactServer::peer(const std::string& routingId) {
  auto it = peers_.find(routingId);
  if (it == peers_.end()) it = peers_.emplace(routingId, Peer(options_.limits.peerRequests)).first;
  return it->second;
}

void ArtifactServer::eraseParked(const std::function<bool(const Parked&)>& drop) {
  for (auto m = parkedManifests_.begin(); m != parkedManifests_.end();) {
    std::erase_if(m->second, drop);
    m = m->second.empty() ? parkedManifests_.erase(m) : std::next(m);
  }
  for (auto a = parked_.begin(); a != parked_.end();) {
    for (auto c = a->second.begin(); c != a->second.end();) {
      std::erase_if(c->second, drop);
      c = c->second.empty() ? a->second.erase(c) : std::next(c);
    }
    a = a->second.empty() ? parked_.erase(a) : std::next(a);
  }
}

void ArtifactServer::forget(const std::string& routingId) {
  eraseParked([&](const Parked& p) { return p.routingId == routingId; });
  peers_.erase(routingId);
  budget_.forget(routingId);
}

std::shared_ptr<Artifact> ArtifactServer::find(const std::string& key, const std::string& id) {
  if (auto a = store_.find(id)) return a;
  auto up = uploads_.find({key, id});
  if (up == uploads_.end() || !up->second->delta) return nullptr;
  up->second->lastPart = SteadyClock::now();  // being fetched: not idle
  return up->second->delta;
}

void ArtifactServer::onReadable() {
  for (int budget = 0; budget < 256; ++budget) {
    zmq::message_t routing;
    if (!socket_.recv(routing, zmq::recv_flags::dontwait)) break;
    std::vector<zmq::message_t> parts;
    bool more = routing.more();
    while (more) {
      zmq::message_t part;
      (void)socket_.recv(part, zmq::recv_flags::none);
      more = part.more();
      if (parts.size() < 2) parts.push_back(std::move(part));
    }
    if (parts.empty()) continue;
    const char* userId = parts[0].gets("User-Id");
    const std::string key = userId ? userId : "";
    const std::string routingId = routing.to_string();
    if (!budget_.admit(routingId, key, SteadyClock::now())) {
      // Ignored rather than closed: a ROUTER cannot close one peer's connection (libzmq has no
      // call for it outside its draft API), and the ZAP handler, which could refuse it at the
      // handshake, is never told when a key's connections close. Ignored, it costs ZeroMQ's
      // idle connection state and nothing here: nothing is kept for it and nothing sent to it,
      // so its pipes stay empty; a receiver hearing nothing on it reconnects or gives up.
      if (std::has_single_bit(++stats_.refusedConnections))
        spdlog::warn(
            "artifact server: {} has {} connections (connections_per_key); messages on others "
            "are ignored ({} so far)",
            peerName(key), budget_.keyConnections(key), stats_.refusedConnections);
      continue;
    }
    try {
      handle(routingId, key, parts[0], parts.size() > 1 ? &parts[1] : nullptr);
    } catch (const std::exception& e) {
      // One bad request (a disk error reading a chunk) must not end the server.
      spdlog::error("artifact server: request from {} failed: {}", peerName(key), e.what());
    }
  }
  pump();
}

void ArtifactServer::handle(const std::string& routingId, const std::string& key,
                            const zmq::message_t& header, const zmq::message_t* payload) {
  auto decoded = wire::decode(header.data(), header.size());
  if (auto* r = std::get_if<wire::Refused>(&decoded)) {
    ++stats_.undecodable;
    if (r->kind == wire::Refused::Kind::invalidId) ++stats_.invalidIds;
    spdlog::warn("artifact server: refused a request from {}: {}", peerName(key), r->reason);
    // Answered, so a peer with a bug learns which field is wrong; never acted on.
    if (r->kind != wire::Refused::Kind::malformed)
      replyUnavailable(routingId, "", r->reason, false);
    return;
  }
  auto body = std::get<0>(decoded)->root().getBody();
  switch (body.which()) {
    case Body::PING: {
      wire::Message m;
      m.body().setPong(body.getPing());
      reply(routingId, m.bytes());
      return;
    }
    case Body::GET_MANIFEST: {
      const std::string id = wire::toString(body.getGetManifest().getArtifactId());
      if (!authorized(key, id)) {
        ++stats_.refused;
        return replyUnavailable(routingId, id, "not granted to this peer", false);
      }
      auto artifact = find(key, id);
      if (!artifact) {
        // A relay still waiting for it: say so (the receiver shows "waiting for upstream"), and
        // answer the moment it arrives rather than at the receiver's next retry.
        auto& waiting = parkedManifests_[id];
        const bool already = std::any_of(waiting.begin(), waiting.end(),
                                         [&](const Parked& w) { return w.routingId == routingId; });
        if (!already && waiting.size() < 64 && budget_.take(routingId))
          waiting.push_back({routingId, SteadyClock::now()});
        if (waiting.empty()) parkedManifests_.erase(id);
        return replyUnavailable(routingId, id, "not here yet", true);
      }
      return replyManifest(routingId, *artifact);
    }
    case Body::GET_CHUNKS: {
      auto req = body.getGetChunks();
      const std::string id = wire::toString(req.getArtifactId());
      if (!authorized(key, id)) {
        ++stats_.refused;
        return replyUnavailable(routingId, id, "not granted to this peer", false);
      }
      auto artifact = find(key, id);
      if (!artifact) return replyUnavailable(routingId, id, "not here yet", true);
      const auto now = SteadyClock::now();
      // Each index once per request, whatever the request repeats.
      std::vector<std::uint32_t> indices;
      indices.reserve(req.getIndices().size());
      for (auto i : req.getIndices())
        indices.push_back(i);
      std::sort(indices.begin(), indices.end());
      const auto unique = std::unique(indices.begin(), indices.end());
      stats_.droppedRequests += static_cast<std::uint64_t>(indices.end() - unique);
      indices.erase(unique, indices.end());
      for (auto index : indices) {
        if (index >= artifact->manifest().chunkCount()) continue;
        if (artifact->hasChunk(index))
          serve(routingId, artifact, index, now);
        else
          park(routingId, id, index, now);
      }
      return;
    }
    case Body::OPEN_DELTA: {
      auto req = body.getOpenDelta();
      bool qcow2Ok = false;
      for (auto f : req.getFormats())
        qcow2Ok |= f == proto::DeltaFormat::QCOW2_CLUSTERS;
      return openDelta(routingId, key, wire::toString(req.getTargetId()),
                       wire::toString(req.getBasisId()), qcow2Ok);
    }
    case Body::SIGNATURE_PART: {
      auto p = body.getSignaturePart();
      std::span<const std::byte> bytes;
      if (payload) bytes = {static_cast<const std::byte*>(payload->data()), payload->size()};
      return signaturePart(routingId, key, wire::toString(p.getTargetId()),
                           wire::toString(p.getBasisId()), p.getOffset(), p.getTotalSize(),
                           p.getBlockSize(), bytes);
    }
    default:
      ++stats_.undecodable;  // a sender-side message sent to us: ignore
      return;
  }
}

void ArtifactServer::reply(const std::string& routingId, std::string header) {
  // Small replies are dropped when the peer's queue is full: it is busy receiving chunks, and
  // every request it makes is repeated when unanswered.
  try {
    if (!socket_.send(zmq::buffer(routingId), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return;
    socket_.send(zmq::buffer(header), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    // The receiver disconnected; it asks again when it is back.
  }
}

void ArtifactServer::replyUnavailable(const std::string& routingId, const std::string& artifactId,
                                      const std::string& reason, bool retryable) {
  wire::Message m;
  auto u = m.body().initUnavailable();
  u.setArtifactId(artifactId);
  u.setReason(reason);
  u.setRetryable(retryable);
  reply(routingId, m.bytes());
}

void ArtifactServer::replyManifest(const std::string& routingId, const Artifact& artifact) {
  wire::Message m;
  auto r = m.body().initManifest();
  r.setArtifactId(artifact.id());
  r.setEncoded(wire::asData(artifact.encodedManifest()));
  r.setChunksAvailable(artifact.chunksAvailable());
  reply(routingId, m.bytes());
}

ArtifactServer::SendResult ArtifactServer::sendChunk(const std::string& routingId,
                                                     const std::string& header,
                                                     zmq::message_t& payload) {
  try {
    // The first frame is where ZeroMQ checks the peer's pipe; once it is taken, the rest of the
    // message is too.
    if (!socket_.send(zmq::buffer(routingId), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return SendResult::full;
    socket_.send(zmq::buffer(header), zmq::send_flags::sndmore);
    const auto len = payload.size();
    socket_.send(payload, zmq::send_flags::none);
    ++stats_.chunksServed;
    stats_.bytesServed += len;
    return SendResult::sent;
  } catch (const zmq::error_t&) {
    return SendResult::gone;  // EHOSTUNREACH: that connection is gone
  }
}

void ArtifactServer::serve(const std::string& routingId, const std::shared_ptr<Artifact>& artifact,
                           std::uint32_t index, SteadyClock::time_point since) {
  Peer& p = peer(routingId);
  if (p.held || !p.owed.empty()) {
    // Its queue is full: owe it the chunk (once), read it from disk when it can be sent.
    if (!budget_.take(routingId)) {
      ++stats_.droppedRequests;  // its key holds peerRequests already
    } else if (!p.owed.add({artifact->id(), index, since})) {
      budget_.give(routingId);
      ++stats_.droppedRequests;
    }
    schedulePump();
    return;
  }
  const std::uint32_t len = artifact->manifest().chunkLength(index);
  zmq::message_t payload(len);
  switch (artifact->readChunk(index, static_cast<std::byte*>(payload.data()))) {
    case ReadStatus::ok:
      break;
    case ReadStatus::missing:
      return park(routingId, artifact->id(), index, since);
    case ReadStatus::corrupt:
      ++stats_.corruptChunks;
      // Never forwarded: the request waits for a good copy, fetched again from upstream.
      park(routingId, artifact->id(), index, since);
      if (!repair_ || !repair_(artifact, index)) {
        auto& waiting = parked_[artifact->id()][index];
        for (const auto& w : waiting) {
          unpark(w.routingId);
          replyUnavailable(w.routingId, artifact->id(),
                           "chunk " + std::to_string(index) +
                               " is damaged on this host's disk and cannot be fetched again here",
                           false);
        }
        waiting.clear();
      }
      return;
  }
  wire::Message m;
  auto h = m.body().initChunk();
  h.setArtifactId(artifact->id());
  h.setIndex(index);
  h.setSize(len);
  h.setHeldUs(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - since).count()));
  std::string header = m.bytes();
  switch (sendChunk(routingId, header, payload)) {
    case SendResult::sent:
      return;
    case SendResult::full:
      ++stats_.queueFull;
      p.held = HeldChunk{std::move(header), std::move(payload)};
      schedulePump();
      return;
    case SendResult::gone:
      forget(routingId);
      return;
  }
}

void ArtifactServer::schedulePump() {
  if (pumpTimer_) return;
  pumpTimer_ = reactor_.every(kPumpPeriod, [this] { pump(); });
}

void ArtifactServer::pump() {
  bool blocked = false;
  std::vector<std::string> gone;
  for (auto& [routingId, p] : peers_) {
    if (p.held) {
      switch (sendChunk(routingId, p.held->header, p.held->payload)) {
        case SendResult::sent:
          p.held.reset();
          break;
        case SendResult::full:
          break;
        case SendResult::gone:
          gone.push_back(routingId);
          continue;
      }
    }
    // Owed chunks go out until the queue is full again (serve() holds the one it refuses).
    while (!p.held && !p.owed.empty()) {
      auto owed = p.owed.next();
      budget_.give(routingId);
      std::shared_ptr<Artifact> artifact;
      try {
        artifact = find(budget_.keyOf(routingId), owed->artifactId);
      } catch (const std::exception&) {
      }
      if (!artifact) continue;
      const std::uint32_t len = artifact->manifest().chunkLength(owed->index);
      zmq::message_t payload(len);
      if (artifact->readChunk(owed->index, static_cast<std::byte*>(payload.data())) !=
          ReadStatus::ok)
        continue;  // damaged or dropped since: the receiver asks for it again
      wire::Message m;
      auto h = m.body().initChunk();
      h.setArtifactId(artifact->id());
      h.setIndex(owed->index);
      h.setSize(len);
      h.setHeldUs(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - owed->since)
              .count()));
      std::string header = m.bytes();
      const auto result = sendChunk(routingId, header, payload);
      if (result == SendResult::full) p.held = HeldChunk{std::move(header), std::move(payload)};
      if (result == SendResult::gone) {
        gone.push_back(routingId);
        break;
      }
    }
    blocked |= p.held.has_value() || !p.owed.empty();
  }
  for (const auto& routingId : gone)
    forget(routingId);
  if (!blocked && pumpTimer_) {
    reactor_.cancel(pumpTimer_);
    pumpTimer_ = 0;
  }
}

void ArtifactServer::park(const std::string& routingId, const std::string& artifactId,
                          std::uint32_t index, SteadyClock::time_point since) {
  auto& waiting = parked_[artifactId][index];
  for (const auto& w : waiting)
    if (w.routingId == routingId) return;
  if (!budget_.take(routingId)) {
    ++stats_.droppedRequests;  // the receiver asks again when the chunk does not come
    if (waiting.empty()) parked_[artifactId].erase(index);
    if (parked_[artifactId].empty()) parked_.erase(artifactId);
    return;
  }
  waiting.push_back({routingId, since});
}

void ArtifactServer::unpark(const std::string& routingId) {
  budget_.give(routingId);
}

void ArtifactServer::onStoreEvent(const StoreEvent& event) {
  if (event.kind == StoreEvent::Kind::added) {
    auto m = parkedManifests_.find(event.artifactId);
    if (m == parkedManifests_.end()) return;
    auto waiting = std::move(m->second);
    parkedManifests_.erase(m);
    auto artifact = store_.find(event.artifactId);
    for (const auto& p : waiting) {
      unpark(p.routingId);
      if (artifact) replyManifest(p.routingId, *artifact);
    }
    return;
  }
  if (event.kind != StoreEvent::Kind::chunk) return;
  auto a = parked_.find(event.artifactId);
  if (a == parked_.end()) return;
  auto c = a->second.find(event.index);
  if (c == a->second.end()) return;
  auto waiting = std::move(c->second);
  a->second.erase(c);
  if (a->second.empty()) parked_.erase(a);
  auto artifact = store_.find(event.artifactId);
  for (const auto& p : waiting) {
    unpark(p.routingId);
    if (artifact) serve(p.routingId, artifact, event.index, p.since);
  }
}

void ArtifactServer::expireParked() {
  const auto now = SteadyClock::now();
  const auto cutoff = now - options_.parkTimeout;
  eraseParked([&](const Parked& p) {
    if (p.since >= cutoff) return false;
    unpark(p.routingId);
    return true;
  });
  // An upload nobody finished or used is removed, file and all.
  const auto uploadCutoff = now - options_.limits.uploadTimeout;
  std::erase_if(uploads_, [&](const auto& u) {
    if (u.second->inUse || u.second->lastPart >= uploadCutoff) return false;
    spdlog::info("artifact server: removing the unused signature upload of {} for {}",
                 peerName(u.first.first), ids::shortForm(u.first.second));
    return true;
  });
  // A connection silent for longer than ZeroMQ waits for a heartbeat's answer gives its slot
  // back (a receiver that reconnects has a new routing id; the old one would hold a slot
  // forever): by then ZeroMQ has dropped it, and what was queued to it, unless it still reads.
  const auto silent =
      now - options_.connection.heartbeatInterval - options_.connection.heartbeatTimeout;
  for (const auto& routingId : budget_.idleSince(silent)) {
    auto p = peers_.find(routingId);
    if (p == peers_.end() || !p->second.held) forget(routingId);
  }
  // Connections that hold nothing any more cost nothing here but their slot.
  std::erase_if(peers_, [&](const auto& p) {
    return !p.second.held && p.second.owed.empty() && budget_.requests(p.first) == 0;
  });
}

// --- deltas -----------------------------------------------------------------------------------

void ArtifactServer::replyDelta(const std::string& routingId, const std::string& targetId,
                                const std::string& basisId,
                                const std::function<void(proto::DeltaReply::Builder)>& fill) {
  wire::Message m;
  auto r = m.body().initDeltaReply();
  r.setTargetId(targetId);
  r.setBasisId(basisId);
  fill(r);
  reply(routingId, m.bytes());
}

void ArtifactServer::openDelta(const std::string& routingId, const std::string& key,
                               const std::string& targetId, const std::string& basisId,
                               bool qcow2Ok) {
  if (!authorized(key, targetId)) {
    ++stats_.refused;
    return replyUnavailable(routingId, targetId, "not granted to this peer", false);
  }
  const std::string deltaId = ids::deltaId(basisId, targetId);
  auto refuse = [&](const std::string& why) {
    replyDelta(routingId, targetId, basisId, [&](auto r) { r.setUnavailable(why); });
  };
  auto pending = [&] { replyDelta(routingId, targetId, basisId, [](auto r) { r.setPending(); }); };
  if (auto delta = find(key, deltaId)) {
    return replyDelta(routingId, targetId, basisId, [&](auto r) {
      auto ready = r.initReady();
      ready.setArtifactId(deltaId);
      ready.setEncoded(wire::asData(delta->encodedManifest()));
      ready.setChunksAvailable(delta->chunksAvailable());
    });
  }
  if (auto f = deltaFailures_.find(deltaId); f != deltaFailures_.end()) return refuse(f->second);
  if (deltaWorkers_.count(deltaId)) return pending();
  auto target = store_.find(targetId);
  // This agent is receiving the target right now (a relay fetching it, maybe as a delta itself):
  // the delta for the next hop follows — cut through when it is the same delta, computed here
  // once the target is complete otherwise. Meanwhile the receiver asks again.
  if (target && !target->complete() && target->receiving()) return pending();
  if (!target || !target->complete())
    return refuse("the target is not complete here; fetch it whole");
  auto basis = store_.find(basisId);
  auto up = uploads_.find({key, deltaId});
  const bool uploaded =
      up != uploads_.end() && up->second->total > 0 && up->second->received >= up->second->total;
  if ((basis && basis->complete()) || uploaded) {
    // Bounded: beyond `deltaJobs` the receiver is told "pending" and asks again shortly.
    if (deltaWorkers_.size() >= options_.limits.deltaJobs) return pending();
    // The delta is written to scratch before its size is known, and a delta of data with nothing
    // in common is about as large as the target: that much must fit beside the reserve. Not
    // remembered as a failure: asked again once there is room, it is computed.
    try {
      store_.requireSpace(target->manifest().size, "a delta of " + ids::shortForm(targetId),
                          ErrorKind::transient);
    } catch (const InsufficientSpace& e) {
      spdlog::warn("artifact server: no delta for {}: {}", peerName(key), e.what());
      return refuse(std::string(e.what()) + "; try again later");
    }
    if (basis && basis->complete()) {
      startDelta(deltaId, target, basis, {}, qcow2Ok, std::nullopt);
    } else {
      up->second->inUse = true;
      startDelta(deltaId, target, nullptr, up->second->dir.path(up->second->name), false,
                 up->first);
    }
    return pending();
  }
  const std::uint32_t block = options_.deltaBlockSize;
  replyDelta(routingId, targetId, basisId, [&](auto r) { r.setNeedSignature(block); });
}

void ArtifactServer::signaturePart(const std::string& routingId, const std::string& key,
                                   const std::string& targetId, const std::string& basisId,
                                   std::uint64_t offset, std::uint64_t total,
                                   std::uint32_t blockSize, std::span<const std::byte> bytes) {
  // Only for a target this peer may fetch; the basis is a well-formed image id (checked at
  // decode), not necessarily one held here — that is what the signature is for.
  if (!authorized(key, targetId)) {
    ++stats_.refused;
    ++stats_.refusedUploads;
    return replyUnavailable(routingId, targetId, "not granted to this peer", false);
  }
  const std::string deltaId = ids::deltaId(basisId, targetId);
  const std::pair<std::string, std::string> slot{key, deltaId};
  auto refuse = [&](const std::string& why) {
    ++stats_.refusedUploads;
    auto it = uploads_.find(slot);
    if (it != uploads_.end() && !it->second->inUse) uploads_.erase(it);
    spdlog::warn("artifact server: refused a signature upload from {}: {}", peerName(key), why);
    replyDelta(routingId, targetId, basisId, [&](auto r) { r.setUnavailable(why); });
  };
  if (total == 0 || total > options_.limits.signatureMax)
    return refuse("a signature of " + std::to_string(total) + " bytes (at most " +
                  std::to_string(options_.limits.signatureMax) + ")");
  if (offset + bytes.size() > total) return refuse("a signature part beyond its total size");
  auto it = uploads_.find(slot);
  if (it != uploads_.end() && it->second->inUse) return;  // a delta is being made from it
  if (offset == 0 || it == uploads_.end() || it->second->total != total) {
    if (it != uploads_.end()) uploads_.erase(it);
    const auto mine = std::count_if(uploads_.begin(), uploads_.end(),
                                    [&](const auto& u) { return u.first.first == key; });
    if (static_cast<std::size_t>(mine) >= options_.limits.signatureUploads)
      return refuse("too many signature uploads in progress from this peer");
    if (offset != 0) return refuse("a signature upload that does not start at offset 0");
    // Counted against the disk reserve like any artifact, and refused in the same words.
    try {
      store_.requireSpace(total, "a basis signature", ErrorKind::transient);
    } catch (const InsufficientSpace& e) {
      return refuse(e.what());
    }
    auto upload = std::make_unique<SignatureUpload>(store_.scratch(),
                                                    "sig-" + std::to_string(++uploadCounter_), key);
    upload->total = total;
    upload->blockSize = blockSize;
    it = uploads_.emplace(slot, std::move(upload)).first;
  }
  SignatureUpload& up = *it->second;
  if (offset != up.received) return refuse("signature parts out of order");
  if (::pwrite(up.fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(bytes.size())) {
    const int err = errno;
    return refuse(std::string("cannot write the signature: ") + std::strerror(err));
  }
  up.received += bytes.size();
  up.lastPart = SteadyClock::now();
}

void ArtifactServer::startDelta(const std::string& deltaId, const std::shared_ptr<Artifact>& target,
                                const std::shared_ptr<Artifact>& basis, fs::path signature,
                                bool qcow2Ok,
                                std::optional<std::pair<std::string, std::string>> upload) {
  spdlog::info("artifact server: computing delta {} -> {} ({})",
               basis ? basis->manifest().imageVersion : "uploaded signature",
               target->manifest().imageVersion, ids::shortForm(target->id()));
  std::weak_ptr<bool> alive = alive_;
  const ServerOptions opts = options_;
  // From an uploaded signature: kept beside the upload's file, in scratch, never in the store.
  std::string scratchName;
  if (upload) scratchName = uploads_.at(*upload)->name + ".delta";
  deltaWorkers_[deltaId] = std::jthread([this, alive, deltaId, target, basis, signature, opts,
                                         qcow2Ok, upload, scratchName] {
    std::string failure;
    bool noSpace = false;
    std::shared_ptr<Artifact> made;
    try {
      TempDir work(store_.scratch().path(), "delta-");
      const fs::path out = work.path() / "delta";
      DeltaStats stats;
      DeltaFormat format = DeltaFormat::rdiffXz;
      if (basis && qcow2Ok) {
        try {
          stats = makeQcow2Delta(basis->dataPath(), target->dataPath(), out, work.path(),
                                 opts.deltaContentBlockSize, opts.deltaXzPreset);
          format = DeltaFormat::qcow2Clusters;
        } catch (const DeltaUnsupported& e) {
          spdlog::info("artifact server: no qcow2 delta ({}); a plain rdiff instead", e.what());
        }
      }
      if (format == DeltaFormat::rdiffXz) {
        fs::path sig = signature;
        if (basis) {
          sig = work.path() / "basis.sig";
          makeSignature(basis->dataPath(), sig, opts.deltaBlockSize);
        }
        stats = makeDelta(sig, target->dataPath(), out, opts.deltaXzPreset);
      }
      const double ratio = static_cast<double>(stats.deltaBytes) /
                           static_cast<double>(std::max<std::uint64_t>(1, target->manifest().size));
      if (ratio > opts.deltaMaxRatio) {
        failure = "a delta would be " + std::to_string(static_cast<int>(ratio * 100)) +
                  "% of the image; fetch it whole";
      } else {
        ManifestOptions mo;
        mo.kind = ArtifactKind::delta;
        mo.imageName = target->manifest().imageName;
        mo.imageVersion = target->manifest().imageVersion;
        mo.output = target->manifest().output;
        mo.basisId = std::string(ids::splitDelta(deltaId)->basis);
        mo.targetId = target->id();
        mo.deltaFormat = format;
        mo.deltaBlockSize =
            format == DeltaFormat::qcow2Clusters ? opts.deltaContentBlockSize : opts.deltaBlockSize;
        mo.chunkSize = store_.options().chunkSize;
        if (upload)
          made = store_.addScratchFile(out, mo, scratchName);
        else
          store_.addFile(out, mo);
        spdlog::info("artifact server: {} delta for {} is {} ({:.2f}% of the image)",
                     toString(format), ids::shortForm(target->id()), formatBytes(stats.deltaBytes),
                     ratio * 100);
      }
    } catch (const InsufficientSpace& e) {
      failure = std::string("delta failed: ") + e.what() + "; try again later";
      noSpace = true;
      spdlog::error("artifact server: {}", failure);
    } catch (const std::exception& e) {
      failure = std::string("delta failed: ") + e.what();
      spdlog::error("artifact server: {}", failure);
    }
    reactor_.post([this, alive, deltaId, failure, noSpace, upload, made, scratchName] {
      if (alive.expired()) return;
      auto it = deltaWorkers_.find(deltaId);
      if (it != deltaWorkers_.end()) {
        it->second.detach();  // this very thread is ending; nothing to join
        deltaWorkers_.erase(it);
      }
      if (failure.empty()) {
        ++stats_.deltasComputed;
      } else if (!upload && !noSpace) {
        // Remembered only when made from a basis held here: a failure from an uploaded
        // signature says something about that upload, not about the delta, and must not let
        // one peer's junk refuse the delta to everyone else.
        if (deltaFailures_.size() >= 1024) deltaFailures_.clear();
        deltaFailures_[deltaId] = failure;
      }
      if (!upload) return;
      auto up = uploads_.find(*upload);
      if (up == uploads_.end()) {
        if (made) store_.scratch().removeTree(scratchName);
        return;
      }
      if (!made) {
        uploads_.erase(up);  // useless: its file goes now
        return;
      }
      // The signature has served; the delta stays with the upload, for that key only, until
      // it is idle for uploadTimeout (or replaced by another upload of the same delta).
      SignatureUpload& u = *up->second;
      u.fd.reset();
      u.dir.unlink(u.name);
      u.delta = made;
      u.inUse = false;
      u.lastPart = SteadyClock::now();
    });
  });
}

}  // namespace imgpipe::transfer
