#include "transfer/fetch_runner.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "common/agent/task_failure.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/rate_meter.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "protocol/ids.h"
#include "transfer/delta.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
namespace {

// The store's writer seen as the fetch session's sink.
class WriterSink : public ChunkSink {
 public:
  explicit WriterSink(Artifact::Writer& writer) : writer_(writer) {}
  bool has(std::uint32_t index) override { return writer_.artifact().hasChunk(index); }
  bool write(std::uint32_t index, std::span<const std::byte> data) override {
    return writer_.writeChunk(index, data);
  }
  std::vector<std::uint32_t> missing() override { return writer_.artifact().missingChunks(); }
  std::uint64_t bytesDone() override { return writer_.artifact().bytesAvailable(); }

 private:
  Artifact::Writer& writer_;
};

// Progress reports of a fetch: the rate starts over with each phase (manifest, signature, delta,
// chunks).
class ProgressMeter {
 public:
  FetchProgress sample(std::string phase, std::uint64_t done, std::uint64_t total,
                       std::uint32_t attempt, std::string state) {
    if (phase != phase_) {
      phase_ = phase;
      rate_.reset();
    }
    rate_.sample(done, RateMeter::Clock::now());
    FetchProgress p;
    p.phase = std::move(phase);
    p.done = done;
    p.total = total;
    p.rateBps = rate_.perSecond();
    p.etaS = rate_.etaSeconds(done, total);
    p.attempt = attempt;
    p.state = std::move(state);
    return p;
  }

 private:
  std::string phase_;
  RateMeter rate_;
};

}  // namespace

struct TransferPlane::Active {
  TransferPlane& plane;
  std::string id;
  Active(TransferPlane& p, std::string artifactId, FetchSession* session)
      : plane(p), id(std::move(artifactId)) {
    std::lock_guard lock(plane.activeMutex_);
    plane.active_[id] = session;
  }
  ~Active() {
    std::lock_guard lock(plane.activeMutex_);
    plane.active_.erase(id);
  }
};

TransferPlane::TransferPlane(TransferConfig config, zmq::context_t& context, net::Reactor& reactor,
                             net::CurveKeyPair keys, bool serve)
    : config_(std::move(config)), context_(context), reactor_(reactor), keys_(std::move(keys)) {
  StoreOptions so;
  so.dir = config_.storeDir;
  so.retention = config_.retention;
  so.chunkSize = config_.chunkSize;
  so.reserveBytes = config_.reserve;
  store_ = std::make_unique<ArtifactStore>(so);
  if (serve && !config_.listen.empty()) {
    server_ = std::make_unique<ArtifactServer>(context_, reactor_, *store_, keys_,
                                               config_.serverOptions());
    server_->setRepairHook([this](const std::shared_ptr<Artifact>& a, std::uint32_t index) {
      return repair(a, index);
    });
  }
}

TransferPlane::~TransferPlane() {
  repairStop_.request_stop();
  repairs_.clear();
  server_.reset();
}

bool TransferPlane::repair(const std::shared_ptr<Artifact>& artifact, std::uint32_t index) {
  {
    std::lock_guard lock(activeMutex_);
    auto it = active_.find(artifact->id());
    if (it != active_.end()) {
      it->second->requeue(index);
      return true;
    }
  }
  auto origin = artifact->origin();
  if (!origin) return false;
  auto it = repairs_.find(artifact->id());
  if (it != repairs_.end()) {
    // A repair that already ended has nothing left to join for; one still running will pick up
    // the newly dropped chunk when it rechecks what is missing.
    if (!artifact->complete() && it->second.joinable()) return true;
    repairs_.erase(it);
  }
  spdlog::warn("artifact {}: fetching damaged chunk {} again from {}",
               ids::shortForm(artifact->id()), index, origin->endpoint);
  FetchRequest req;
  req.artifactId = artifact->id();
  req.manifestDigest = artifact->digest();
  req.upstream = {origin->endpoint, origin->serverKey};
  req.allowDelta = false;
  auto stop = repairStop_.get_token();
  repairs_[artifact->id()] = std::jthread([this, req, stop] {
    try {
      fetch(req, stop);
      spdlog::info("artifact {}: repaired", ids::shortForm(req.artifactId));
    } catch (const std::exception& e) {
      spdlog::error("artifact {}: repair failed: {}", ids::shortForm(req.artifactId), e.what());
    }
  });
  return true;
}

namespace {
// What the coordinator (or an operator) hands a fetch is checked before anything uses it.
void checkRequest(const FetchRequest& r) {
  auto why = ids::problem("artifact id", ids::Kind::artifactId, r.artifactId);
  if (!why && !r.manifestDigest.empty())
    why = ids::problem("manifest digest", ids::Kind::digest, r.manifestDigest);
  if (!why) why = ids::problem("upstream key", ids::Kind::curveKey, r.upstream.serverKey);
  if (why) throw Error("refusing the fetch: " + *why, ErrorKind::refused);
}
}  // namespace

FetchOutcome TransferPlane::fetch(const FetchRequest& request, std::stop_token stop,
                                  const std::function<void(const FetchProgress&)>& progress) {
  checkRequest(request);
  const auto started = std::chrono::steady_clock::now();
  auto log =
      request.jobId.empty() ? spdlog::default_logger() : log::forJob(request.jobId, "transfer");
  FetchOutcome out;
  auto finishOutcome = [&](std::shared_ptr<Artifact> a) {
    out.artifact = std::move(a);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
  };
  if (auto a = store_->find(request.artifactId);
      a && a->complete() &&
      (request.manifestDigest.empty() || a->digest() == request.manifestDigest)) {
    out.alreadyHere = true;
    return finishOutcome(a);
  }

  Fetcher fetcher(context_, request.upstream, keys_, config_.connection, log);
  ProgressMeter meter;
  auto report = [&](const std::string& phase, std::uint64_t done, std::uint64_t total,
                    const std::string& state) {
    if (progress) progress(meter.sample(phase, done, total, fetcher.reconnects(), state));
  };
  auto stopped = [&] {
    return Error("the fetch of " + request.artifactId + " was stopped", ErrorKind::stopped);
  };

  // 1. The manifest, checked against the trust anchor.
  std::string encoded;
  if (auto a = store_->find(request.artifactId); a && a->digest() == request.manifestDigest) {
    encoded = a->encodedManifest();
  } else {
    ManifestExchange ex(request.artifactId, request.manifestDigest,
                        config_.fetchOptions(request.rateLimit, request.size).liveness);
    if (!fetcher.run(ex, stop, [&] { report("manifest", 0, 0, ex.state()); })) throw stopped();
    if (ex.failed()) throw Error(ex.error(), ex.errorKind());
    encoded = ex.encoded();
  }
  auto elapsedMs = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started)
        .count();
  };
  log->debug("manifest of {} after {} ms", ids::shortForm(request.artifactId), elapsedMs());
  // 2. Room for it (InsufficientSpace names path, need and what is available).
  auto artifact = store_->openPartial(encoded);
  const Manifest& manifest = artifact->manifest();
  std::unique_ptr<Artifact::Writer> writer;
  while (!(writer = Artifact::openWriter(artifact))) {
    // Another task of this agent is fetching the same artifact: wait for it instead of pulling
    // the bytes over the link twice.
    if (artifact->complete()) {
      out.alreadyHere = true;
      return finishOutcome(artifact);
    }
    if (stop.stop_requested()) throw stopped();
    report("transfer", artifact->bytesAvailable(), manifest.size, "waiting for upstream");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (artifact->chunksAvailable() > 0) {
    const auto had = artifact->chunksAvailable();
    const auto good = writer->reverify();
    log->info("resuming {}: {} of {} chunks already here ({} failed re-verification)",
              ids::shortForm(artifact->id()), good, manifest.chunkCount(), had - good);
  }
  artifact->setOrigin({request.upstream.endpoint, request.upstream.serverKey});

  // 3. A delta, when an older version of this image is here and nothing of this one is yet.
  if (request.allowDelta && config_.delta && manifest.kind == ArtifactKind::image &&
      artifact->chunksAvailable() == 0) {
    if (auto basis = store_->newestImage(manifest.imageName, manifest.output, artifact->id())) {
      if (tryDelta(request, fetcher, *writer, basis, stop, progress, out)) {
        out.reconnects = fetcher.reconnects();
        return finishOutcome(artifact);
      }
      if (stop.stop_requested()) throw stopped();
      log->info("no delta for {}: {}; fetching what is missing", ids::shortForm(artifact->id()),
                out.deltaNote);
    }
  }

  // 4. The chunks still missing.
  WriterSink sink(*writer);
  FetchSession session(artifact->id(), manifest, sink,
                       config_.fetchOptions(request.rateLimit, manifest.size));
  {
    Active active(*this, artifact->id(), &session);
    if (!fetcher.run(session, stop, [&] {
          report("transfer", session.bytesDone(), manifest.size, session.state());
        }))
      throw stopped();
  }
  out.reconnects = fetcher.reconnects();
  out.congestion = fetcher.congestion();
  if (session.path()) out.rttMs = session.path()->rtt.count() / 1000.0;
  out.deadAfterMs = static_cast<double>(session.deadAfter().count());
  out.badChunks += session.badChunks();
  out.chunkBytesReceived += session.payloadBytesReceived();
  if (session.failed()) throw Error(session.error(), session.errorKind());
  // 5. Whole-file SHA-256 and SHA-512 before the hop reports complete.
  log->debug("all chunks of {} after {} ms", ids::shortForm(request.artifactId), elapsedMs());
  report("verify", manifest.size, manifest.size, "");
  writer->finalize();
  log->debug("{} verified and synced after {} ms", ids::shortForm(request.artifactId), elapsedMs());
  log->info("fetched {} ({} {}, {}) from {} in {:.1f} s, {} reconnects ({}, rtt {} ms)",
            ids::shortForm(artifact->id()), manifest.imageName, manifest.imageVersion,
            formatBytes(manifest.size), request.upstream.endpoint,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
            out.reconnects, out.congestion.empty() ? "?" : out.congestion, out.rttMs);
  return finishOutcome(artifact);
}

bool TransferPlane::tryDelta(const FetchRequest& request, Fetcher& fetcher,
                             Artifact::Writer& writer, const std::shared_ptr<Artifact>& basis,
                             std::stop_token stop,
                             const std::function<void(const FetchProgress&)>& reportFn,
                             FetchOutcome& out) {
  auto report = [&](const std::string& phase, std::uint64_t done, std::uint64_t total,
                    const std::string& state) {
    if (reportFn) {
      FetchProgress p;
      p.phase = phase;
      p.done = done;
      p.total = total;
      p.attempt = fetcher.reconnects();
      p.state = state;
      reportFn(p);
    }
  };
  Artifact& target = writer.artifact();
  TempDir work(store_->scratch().path(), "fetch-delta-");
  DeltaExchange ex(
      target.id(), basis->id(), {DeltaFormat::qcow2Clusters, DeltaFormat::rdiffXz},
      [&](std::uint32_t blockLen) {
        report("delta", 0, 0, "computing the basis signature");
        makeSignature(basis->dataPath(), work.path() / "basis.sig", blockLen);
        return readFile(work.path() / "basis.sig");
      },
      config_.fetchOptions(request.rateLimit, target.manifest().size).liveness);
  if (!fetcher.run(ex, stop, [&] { report("delta", 0, 0, ex.state()); })) return false;
  if (ex.violated()) throw Error(ex.error());
  if (ex.failed()) {
    out.deltaNote = ex.error();
    return false;
  }
  if (!ex.deltaManifest()) {
    out.deltaNote = ex.refusal().empty() ? "the sender offers none" : ex.refusal();
    return false;
  }
  std::string why;
  auto dm = decodeManifest(*ex.deltaManifest(), &why);
  if (!dm)
    throw Error("the delta manifest from " + request.upstream.endpoint + " is invalid: " + why);
  if (dm->kind != ArtifactKind::delta || dm->basisId != basis->id() ||
      dm->targetId != target.id() ||
      (dm->deltaFormat != DeltaFormat::rdiffXz && dm->deltaFormat != DeltaFormat::qcow2Clusters)) {
    out.deltaNote = "the sender's delta manifest does not fit: " + why;
    return false;
  }
  // The delta is an artifact like any other: journaled, resumable, and kept here, so the next
  // hop that holds the same basis gets these very bytes.
  auto delta = store_->openPartial(*ex.deltaManifest());
  if (!delta->complete()) {
    auto dw = Artifact::openWriter(delta);
    if (!dw) {
      out.deltaNote = "the delta is being fetched by another task";
      return false;
    }
    if (delta->chunksAvailable() > 0) dw->reverify();
    delta->setOrigin({request.upstream.endpoint, request.upstream.serverKey});
    WriterSink sink(*dw);
    FetchSession session(delta->id(), delta->manifest(), sink,
                         config_.fetchOptions(request.rateLimit, delta->manifest().size));
    {
      Active active(*this, delta->id(), &session);
      if (!fetcher.run(session, stop, [&] {
            report("delta", session.bytesDone(), delta->manifest().size, session.state());
          }))
        return false;
    }
    if (session.violated()) throw Error(session.error());
    if (session.failed()) {
      out.deltaNote = "fetching the delta failed: " + session.error();
      return false;
    }
    try {
      dw->finalize();
    } catch (const Error& e) {
      out.deltaNote = e.what();
      return false;
    }
  }
  out.deltaBytes = delta->manifest().size;
  // Patch straight into the target's (preallocated) data file, then let every chunk prove
  // itself against the target's manifest: chunks that do not match are simply fetched.
  report("patch", 0, target.manifest().size, "");
  try {
    if (delta->manifest().deltaFormat == DeltaFormat::qcow2Clusters)
      applyQcow2Delta(basis->dataPath(), delta->dataPath(), target.dataPath(), work.path());
    else
      applyDelta(basis->dataPath(), delta->dataPath(), target.dataPath());
  } catch (const Error& e) {
    out.deltaNote = std::string("patching failed: ") + e.what();
    return false;
  }
  const std::uint32_t good = writer.adoptFile(target.dataPath());
  if (good != target.manifest().chunkCount()) {
    out.deltaNote = "the patched result matched " + std::to_string(good) + " of " +
                    std::to_string(target.manifest().chunkCount()) + " chunks";
    return false;
  }
  report("verify", target.manifest().size, target.manifest().size, "");
  try {
    writer.finalize();
  } catch (const Error& e) {
    out.deltaNote = e.what();
    return false;
  }
  out.viaDelta = true;
  out.deltaNote = std::string(toString(delta->manifest().deltaFormat)) + " delta of " +
                  formatBytes(out.deltaBytes) + " from version " + basis->manifest().imageVersion;
  return true;
}

void FetchRunner::run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
                      std::stop_token stop) {
  const auto* spec = std::get_if<agent::FetchSpec>(&task.kind);
  if (!spec) {
    reporter.failed({task.step, "this agent runs only fetch tasks", 0, {}, false});
    return;
  }
  std::optional<std::string> why;
  if (!spec->imageName.empty())
    why = ids::problem("imageName", ids::Kind::imageName, spec->imageName);
  if (!why && !spec->imageVersion.empty())
    why = ids::problem("imageVersion", ids::Kind::imageVersion, spec->imageVersion);
  if (!why) why = ids::problem("manifestDigest", ids::Kind::digest, spec->manifestDigest);
  if (why) {
    reporter.failed({task.step, "refusing the fetch task: " + *why, 0, {}, false});
    return;
  }
  FetchRequest req;
  req.artifactId = spec->artifactId;
  req.manifestDigest = spec->manifestDigest;
  req.upstream = {spec->upstreamEndpoint, spec->upstreamKey};
  req.rateLimit = spec->rateLimit;
  req.size = spec->size;
  req.jobId = task.jobId;
  try {
    auto out = plane_->fetch(req, stop, [&](const FetchProgress& p) {
      agent::ProgressInfo info;
      info.step = p.phase;
      info.done = p.done;
      info.total = p.total;
      info.rateBps = p.rateBps;
      info.etaS = p.etaS;
      info.retries = p.attempt;
      info.state = p.state;
      reporter.progress(info);
    });
    if (!out.deltaNote.empty()) reporter.log(agent::LogLevel::info, "transfer", out.deltaNote);
    agent::TaskResultInfo result;
    result.artifact = out.artifact->info();
    result.detail = out.alreadyHere ? "already here"
                    : out.viaDelta  ? out.deltaNote
                                    : "fetched " + formatBytes(out.artifact->manifest().size) +
                                         " in " + std::to_string(static_cast<int>(out.seconds)) +
                                         " s (" + std::to_string(out.reconnects) + " reconnects)";
    reporter.completed(result);
  } catch (const Error& e) {
    reporter.failed(agent::failureFrom(e, task.step));
  }
}

void TransferPlane::onGrant(const agent::GrantSpec& grant) {
  if (!server_) return;
  // What the coordinator sends is checked like anything else that names an artifact or a key.
  for (auto why : {ids::problem("grant.artifactId", ids::Kind::artifactId, grant.artifactId),
                   ids::problem("grant.peerKey", ids::Kind::curveKey, grant.peerKey),
                   ids::problem("grant.jobId", ids::Kind::jobId, grant.jobId)})
    if (why) {
      spdlog::warn("ignoring a grant: {}", *why);
      return;
    }
  if (grant.revoke)
    server_->revoke(grant.artifactId, grant.peerKey, grant.jobId);
  else
    server_->grant(grant.artifactId, grant.peerKey, grant.peerName, grant.jobId);
}

void FetchRunner::onGrant(const agent::GrantSpec& grant) {
  plane_->onGrant(grant);
}

}  // namespace imgpipe::transfer
