#include "transfer/artifact_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/error.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "transfer/delta.h"
#include "transfer/transfer_wire.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
using Body = proto::TransferMessage::Body;
using SteadyClock = std::chrono::steady_clock;

namespace {
std::string shortId(const std::string& id) {
  return id.substr(0, std::min<size_t>(id.size(), 16));
}
}  // namespace

ArtifactServer::ArtifactServer(zmq::context_t& context, net::Reactor& reactor, ArtifactStore& store,
                               net::CurveKeyPair keys, ServerOptions options)
    : context_(context),
      reactor_(reactor),
      store_(store),
      keys_(std::move(keys)),
      options_(std::move(options)),
      socket_(context, zmq::socket_type::router) {
  // Without a ZAP handler CURVE accepts any client key; this one admits keys that hold a grant.
  zap_ = std::make_unique<net::ZapHandler>(
      context_, reactor_,
      [this](const std::string& key, const std::string&) -> std::optional<net::PeerIdentity> {
        if (allowAll_.count(key)) return net::PeerIdentity{key, "transfer"};
        for (const auto& [artifact, granted] : grants_)
          if (granted.count(key)) return net::PeerIdentity{key, "transfer"};
        return std::nullopt;
      });
  net::configureCurveServer(socket_, keys_.secretKey);
  net::configureHeartbeats(socket_, options_.heartbeatInterval, options_.heartbeatTimeout);
  // A reply to a receiver that has gone away fails instead of vanishing silently, and nothing
  // is dropped for a full queue: the receivers' credit windows bound what is queued.
  socket_.set(zmq::sockopt::router_mandatory, 1);
  socket_.set(zmq::sockopt::sndhwm, 0);
  socket_.set(zmq::sockopt::sndbuf, 4 << 20);
  socket_.bind(options_.listen);
  reactor_.addSocket(socket_, [this] { onReadable(); });
  std::weak_ptr<bool> alive = alive_;
  storeToken_ = store_.subscribe([this, alive](const StoreEvent& event) {
    reactor_.post([this, alive, event] {
      if (!alive.expired()) onStoreEvent(event);
    });
  });
  expiryTimer_ = reactor_.every(std::chrono::seconds(10), [this] { expireParked(); });
  spdlog::info("artifact server listening on {}", endpoint());
}

ArtifactServer::~ArtifactServer() {
  store_.unsubscribe(storeToken_);
  reactor_.cancel(expiryTimer_);
  reactor_.removeSocket(socket_);
  deltaWorkers_.clear();  // joins: a delta being computed finishes first
  alive_.reset();
}

std::string ArtifactServer::endpoint() const {
  return socket_.get(zmq::sockopt::last_endpoint);
}

void ArtifactServer::grant(const std::string& artifactId, const std::string& peerKey,
                           const std::string& peerName) {
  grants_[artifactId][peerKey] = peerName;
  spdlog::info("artifact server: {} may fetch {}", peerName, shortId(artifactId));
}

void ArtifactServer::revoke(const std::string& artifactId, const std::string& peerKey) {
  auto it = grants_.find(artifactId);
  if (it == grants_.end()) return;
  it->second.erase(peerKey);
  if (it->second.empty()) grants_.erase(it);
}

void ArtifactServer::allowAll(const std::string& peerKey, const std::string& peerName) {
  allowAll_[peerKey] = peerName;
}

bool ArtifactServer::authorized(const std::string& key, const std::string& artifactId) const {
  if (allowAll_.count(key)) return true;
  auto granted = [&](const std::string& id) {
    auto it = grants_.find(id);
    return it != grants_.end() && it->second.count(key) != 0;
  };
  if (granted(artifactId)) return true;
  // A grant for an image covers deltas that produce it.
  if (artifactId.starts_with("delta-") && artifactId.size() > 6 + 64 + 1)
    return granted(artifactId.substr(artifactId.size() - 64));
  return false;
}

void ArtifactServer::onReadable() {
  for (int budget = 0; budget < 256; ++budget) {
    zmq::message_t routing;
    if (!socket_.recv(routing, zmq::recv_flags::dontwait)) return;
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
    try {
      handle(routing.to_string(), key, parts[0], parts.size() > 1 ? &parts[1] : nullptr);
    } catch (const std::exception& e) {
      // One bad request (a disk error reading a chunk) must not end the server.
      spdlog::error("artifact server: request failed: {}", e.what());
    }
  }
}

void ArtifactServer::handle(const std::string& routingId, const std::string& key,
                            const zmq::message_t& header, const zmq::message_t* payload) {
  auto decoded = wire::decode(header.data(), header.size());
  if (auto* why = std::get_if<std::string>(&decoded)) {
    ++stats_.undecodable;
    spdlog::warn("artifact server: dropped an undecodable request: {}", *why);
    if (why->find("version mismatch") != std::string::npos)
      replyUnavailable(routingId, "", *why, false);
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
      auto artifact = store_.find(id);
      if (!artifact) {
        // A relay still waiting for it: say so (the receiver shows "waiting for upstream"), and
        // answer the moment it arrives rather than at the receiver's next retry.
        auto& waiting = parkedManifests_[id];
        if (waiting.size() < 64) waiting.push_back({routingId, SteadyClock::now()});
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
      auto artifact = store_.find(id);
      if (!artifact) return replyUnavailable(routingId, id, "not here yet", true);
      const auto now = SteadyClock::now();
      for (auto index : req.getIndices()) {
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
  try {
    socket_.send(zmq::buffer(routingId), zmq::send_flags::sndmore);
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

void ArtifactServer::serve(const std::string& routingId, const std::shared_ptr<Artifact>& artifact,
                           std::uint32_t index, SteadyClock::time_point since) {
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
        for (const auto& p : waiting)
          replyUnavailable(p.routingId, artifact->id(),
                           "chunk " + std::to_string(index) +
                               " is damaged on this host's disk and cannot be fetched again here",
                           false);
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
  const std::string header = m.bytes();
  try {
    socket_.send(zmq::buffer(routingId), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(header), zmq::send_flags::sndmore);
    socket_.send(payload, zmq::send_flags::none);
    ++stats_.chunksServed;
    stats_.bytesServed += len;
  } catch (const zmq::error_t&) {
  }
}

void ArtifactServer::park(const std::string& routingId, const std::string& artifactId,
                          std::uint32_t index, SteadyClock::time_point since) {
  auto& waiting = parked_[artifactId][index];
  for (const auto& p : waiting)
    if (p.routingId == routingId) return;
  waiting.push_back({routingId, since});
}

void ArtifactServer::onStoreEvent(const StoreEvent& event) {
  if (event.kind == StoreEvent::Kind::added) {
    auto m = parkedManifests_.find(event.artifactId);
    if (m == parkedManifests_.end()) return;
    auto waiting = std::move(m->second);
    parkedManifests_.erase(m);
    if (auto artifact = store_.find(event.artifactId))
      for (const auto& p : waiting)
        replyManifest(p.routingId, *artifact);
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
  if (!artifact) return;
  for (const auto& p : waiting)
    serve(p.routingId, artifact, event.index, p.since);
}

void ArtifactServer::expireParked() {
  const auto cutoff = SteadyClock::now() - options_.parkTimeout;
  for (auto m = parkedManifests_.begin(); m != parkedManifests_.end();) {
    std::erase_if(m->second, [&](const Parked& p) { return p.since < cutoff; });
    m = m->second.empty() ? parkedManifests_.erase(m) : std::next(m);
  }
  for (auto a = parked_.begin(); a != parked_.end();) {
    for (auto c = a->second.begin(); c != a->second.end();) {
      std::erase_if(c->second, [&](const Parked& p) { return p.since < cutoff; });
      c = c->second.empty() ? a->second.erase(c) : std::next(c);
    }
    a = a->second.empty() ? parked_.erase(a) : std::next(a);
  }
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
  const std::string deltaId = deltaArtifactId(basisId, targetId);
  auto refuse = [&](const std::string& why) {
    replyDelta(routingId, targetId, basisId, [&](auto r) { r.setUnavailable(why); });
  };
  if (auto delta = store_.find(deltaId)) {
    return replyDelta(routingId, targetId, basisId, [&](auto r) {
      auto ready = r.initReady();
      ready.setArtifactId(deltaId);
      ready.setEncoded(wire::asData(delta->encodedManifest()));
      ready.setChunksAvailable(delta->chunksAvailable());
    });
  }
  if (auto f = deltaFailures_.find(deltaId); f != deltaFailures_.end()) return refuse(f->second);
  if (deltaWorkers_.count(deltaId))
    return replyDelta(routingId, targetId, basisId, [](auto r) { r.setPending(); });
  auto target = store_.find(targetId);
  // This agent is receiving the target right now (a relay fetching it, maybe as a delta itself):
  // the delta for the next hop follows — cut through when it is the same delta, computed here
  // once the target is complete otherwise. Meanwhile the receiver asks again.
  if (target && !target->complete() && target->receiving())
    return replyDelta(routingId, targetId, basisId, [](auto r) { r.setPending(); });
  if (!target || !target->complete())
    return refuse("the target is not complete here; fetch it whole");
  auto basis = store_.find(basisId);
  if (basis && basis->complete()) {
    startDelta(deltaId, target, basis, {}, qcow2Ok);
    return replyDelta(routingId, targetId, basisId, [](auto r) { r.setPending(); });
  }
  auto up = uploads_.find(deltaId);
  if (up != uploads_.end() && up->second.total > 0 && up->second.received >= up->second.total) {
    startDelta(deltaId, target, nullptr, up->second.file, false);
    return replyDelta(routingId, targetId, basisId, [](auto r) { r.setPending(); });
  }
  const std::uint32_t block = options_.deltaBlockSize;
  replyDelta(routingId, targetId, basisId, [&](auto r) { r.setNeedSignature(block); });
}

void ArtifactServer::signaturePart(const std::string& routingId, const std::string& key,
                                   const std::string& targetId, const std::string& basisId,
                                   std::uint64_t offset, std::uint64_t total,
                                   std::uint32_t blockSize, std::span<const std::byte> bytes) {
  if (!authorized(key, targetId)) {
    ++stats_.refused;
    return replyUnavailable(routingId, targetId, "not granted to this peer", false);
  }
  if (total > (1ull << 32) || offset + bytes.size() > total) return;  // nonsense: ignore
  const std::string deltaId = deltaArtifactId(basisId, targetId);
  auto& up = uploads_[deltaId];
  if (up.file.empty() || up.total != total || offset == 0) {
    fs::create_directories(store_.options().dir / "tmp");
    up.file = store_.options().dir / "tmp" / (deltaId + ".sig");
    up.total = total;
    up.received = 0;
    up.blockSize = blockSize;
    UniqueFd fd(::open(up.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) throwErrno("cannot create " + up.file.string());
  }
  UniqueFd fd(::open(up.file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open " + up.file.string());
  if (::pwrite(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(bytes.size()))
    throwErrno("cannot write " + up.file.string());
  up.received += bytes.size();
}

void ArtifactServer::startDelta(const std::string& deltaId, const std::shared_ptr<Artifact>& target,
                                const std::shared_ptr<Artifact>& basis, fs::path signature,
                                bool qcow2Ok) {
  spdlog::info("artifact server: computing delta {} -> {} ({})",
               basis ? basis->manifest().imageVersion : "uploaded signature",
               target->manifest().imageVersion, shortId(target->id()));
  std::weak_ptr<bool> alive = alive_;
  const ServerOptions opts = options_;
  deltaWorkers_[deltaId] =
      std::jthread([this, alive, deltaId, target, basis, signature, opts, qcow2Ok] {
        std::string failure;
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
          const double ratio =
              static_cast<double>(stats.deltaBytes) /
              static_cast<double>(std::max<std::uint64_t>(1, target->manifest().size));
          if (ratio > opts.deltaMaxRatio) {
            failure = "a delta would be " + std::to_string(static_cast<int>(ratio * 100)) +
                      "% of the image; fetch it whole";
          } else {
            ManifestOptions mo;
            mo.kind = ArtifactKind::delta;
            mo.imageName = target->manifest().imageName;
            mo.imageVersion = target->manifest().imageVersion;
            mo.basisId = deltaId.substr(6, 64);
            mo.targetId = target->id();
            mo.deltaFormat = format;
            mo.deltaBlockSize = format == DeltaFormat::qcow2Clusters ? opts.deltaContentBlockSize
                                                                     : opts.deltaBlockSize;
            mo.chunkSize = store_.options().chunkSize;
            store_.addFile(out, mo);
            spdlog::info("artifact server: {} delta for {} is {} ({:.2f}% of the image)",
                         toString(format), shortId(target->id()), formatBytes(stats.deltaBytes),
                         ratio * 100);
          }
        } catch (const std::exception& e) {
          failure = std::string("delta failed: ") + e.what();
          spdlog::error("artifact server: {}", failure);
        }
        reactor_.post([this, alive, deltaId, failure] {
          if (alive.expired()) return;
          auto it = deltaWorkers_.find(deltaId);
          if (it != deltaWorkers_.end()) {
            it->second.detach();  // this very thread is ending; nothing to join
            deltaWorkers_.erase(it);
          }
          if (failure.empty())
            ++stats_.deltasComputed;
          else
            deltaFailures_[deltaId] = failure;
          uploads_.erase(deltaId);
        });
      });
}

}  // namespace imgpipe::transfer
