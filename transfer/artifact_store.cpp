#include "transfer/artifact_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "common/fd_io.h"
#include "common/units.h"
#include "protocol/ids.h"

namespace imgpipe::transfer {
namespace fs = std::filesystem;
namespace {

void preadAll(int fd, std::byte* out, size_t n, std::uint64_t offset, const fs::path& path) {
  const ssize_t got = preadFully(fd, out, n, offset);
  if (got < 0) throwErrno("cannot read " + path.string());
  if (static_cast<size_t>(got) < n) throw Error("unexpected end of " + path.string());
}

void pwriteAll(int fd, const std::byte* data, size_t n, std::uint64_t offset,
               const fs::path& path) {
  if (pwriteFully(fd, data, n, offset)) return;
  if (errno == ENOSPC) throw InsufficientSpace("disk full while writing " + path.string());
  throwErrno("cannot write " + path.string());
}

// Two manifests of the same bytes, chunked alike: what differs is only the description.
bool sameData(const Manifest& a, const Manifest& b) {
  return a.kind == b.kind && a.size == b.size && a.sha256 == b.sha256 && a.sha512 == b.sha512 &&
         a.chunkSize == b.chunkSize && a.chunkHashes == b.chunkHashes && a.basisId == b.basisId &&
         a.targetId == b.targetId && a.deltaFormat == b.deltaFormat && a.output == b.output;
}

bool chunkMatches(const Manifest& m, std::uint32_t index, std::span<const std::byte> data) {
  if (data.size() != m.chunkLength(index)) return false;
  Hasher h(HashAlgo::sha256);
  h.update(data);
  return h.finish() == m.chunkHash(index);
}

std::uint64_t allocatedBytes(const StoreDir& dir, const std::string& rel) {
  UniqueFd fd(dir.tryOpen(rel, O_PATH));
  return fd ? imgpipe::allocatedBytes(fd.get()) : 0;
}

// The store's scratch space is <store>/tmp/<one directory per process>, each held under an
// flock for the life of its store: at start, whatever no living store holds (an upload or a
// delta of a process that crashed) is swept, and an operator's `imgpipe-transfer import` on the
// same store never sweeps what the running agent is using.
StoreDir sweepAndOpenScratch(const StoreDir& root) {
  StoreDir tmp = root.sub("tmp", true);
  for (const auto& name : tmp.list()) {
    UniqueFd fd(tmp.tryOpen(name, O_RDONLY | O_NOFOLLOW));
    if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // a living store's
    try {
      tmp.removeTree(name);
    } catch (const std::exception& e) {
      spdlog::warn("artifact store: cannot sweep {}: {}", tmp.path(name).string(), e.what());
    }
  }
  static std::atomic<unsigned> counter{0};
  const std::string mine = "p" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  StoreDir scratch = tmp.sub(mine, true);
  if (::flock(scratch.fd(), LOCK_EX | LOCK_NB) != 0)
    throwErrno("cannot lock " + scratch.path().string());
  return scratch;
}

}  // namespace

// --- Artifact ---------------------------------------------------------------------------------

Artifact::Artifact(ArtifactStore& store, StoreDir dir, std::string encoded, Manifest manifest,
                   bool complete, std::uint64_t seq)
    : store_(store),
      dir_(std::move(dir)),
      encoded_(std::move(encoded)),
      manifest_(std::move(manifest)),
      id_(manifest_.id()),
      digest_(manifestDigest(encoded_)),
      complete_(complete),
      seq_(seq) {
  fd_ = dir_.open("data", O_RDWR);
  const std::uint32_t count = manifest_.chunkCount();
  if (complete_) {
    present_.assign(count, true);
    presentCount_ = count;
    presentBytes_ = manifest_.size;
  } else {
    journal_ = std::make_unique<ChunkJournal>(dir_, "journal", count);
    present_ = journal_->replayed();
    for (std::uint32_t i = 0; i < count; ++i)
      if (present_[i]) {
        ++presentCount_;
        presentBytes_ += manifest_.chunkLength(i);
      }
  }
}

bool Artifact::complete() const {
  std::lock_guard lock(mutex_);
  return complete_;
}

bool Artifact::receiving() const {
  std::lock_guard lock(mutex_);
  return writerActive_;
}

std::uint64_t Artifact::seq() const {
  std::lock_guard lock(mutex_);
  return seq_;
}

std::uint32_t Artifact::chunksAvailable() const {
  std::lock_guard lock(mutex_);
  return presentCount_;
}

std::uint64_t Artifact::bytesAvailable() const {
  std::lock_guard lock(mutex_);
  return presentBytes_;
}

bool Artifact::hasChunk(std::uint32_t index) const {
  std::lock_guard lock(mutex_);
  return index < present_.size() && present_[index];
}

std::vector<std::uint32_t> Artifact::missingChunks() const {
  std::lock_guard lock(mutex_);
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = 0; i < present_.size(); ++i)
    if (!present_[i]) out.push_back(i);
  return out;
}

ReadStatus Artifact::readChunk(std::uint32_t index, std::byte* out) {
  if (!hasChunk(index)) return ReadStatus::missing;
  const std::uint32_t len = manifest_.chunkLength(index);
  preadAll(fd_.get(), out, len, manifest_.chunkOffset(index), dataPath());
  if (chunkMatches(manifest_, index, std::span<const std::byte>(out, len))) return ReadStatus::ok;
  spdlog::error(
      "artifact {}: chunk {} on disk does not match its hash; dropped, it will be fetched "
      "again",
      ids::shortForm(id_), index);
  markDropped(index);
  return ReadStatus::corrupt;
}

void Artifact::markDropped(std::uint32_t index) {
  {
    std::lock_guard lock(mutex_);
    if (index >= present_.size() || !present_[index]) return;
    present_[index] = false;
    --presentCount_;
    presentBytes_ -= manifest_.chunkLength(index);
    if (complete_) {
      // Back to partial: a journal listing everything else, and no completion marker.
      complete_ = false;
      journal_ = std::make_unique<ChunkJournal>(dir_, "journal", manifest_.chunkCount());
      journal_->rewrite(present_);
      dir_.unlink("complete");
    } else {
      journal_->recordDropped(index);
    }
  }
  store_.notify({StoreEvent::Kind::dropped, id_, index});
}

void Artifact::setOrigin(const Origin& origin) {
  dir_.writeFileAtomic("origin", origin.endpoint + "\n" + origin.serverKey + "\n");
}

std::optional<Artifact::Origin> Artifact::origin() const {
  if (!dir_.exists("origin")) return std::nullopt;
  auto text = dir_.readFile("origin");
  auto nl = text.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  Origin o{text.substr(0, nl), text.substr(nl + 1)};
  while (!o.serverKey.empty() && o.serverKey.back() == '\n')
    o.serverKey.pop_back();
  return o;
}

agent::ArtifactInfo Artifact::info() const {
  agent::ArtifactInfo i;
  i.id = id_;
  i.sha512 = toHex(manifest_.sha512);
  i.size = manifest_.size;
  i.virtualSize = manifest_.virtualSize;
  i.manifestDigest = digest_;
  i.imageName = manifest_.imageName;
  i.imageVersion = manifest_.imageVersion;
  i.kind = definition::toString(manifest_.output);
  return i;
}

std::unique_ptr<Artifact::Writer> Artifact::openWriter(const std::shared_ptr<Artifact>& artifact) {
  std::lock_guard lock(artifact->mutex_);
  if (artifact->writerActive_ || artifact->complete_) return nullptr;
  artifact->writerActive_ = true;
  return std::make_unique<Writer>(Writer::Key{}, artifact);
}

// --- Artifact::Writer -------------------------------------------------------------------------

Artifact::Writer::Writer(Key, std::shared_ptr<Artifact> artifact)
    : artifact_(std::move(artifact)) {}

Artifact::Writer::~Writer() {
  std::lock_guard lock(artifact_->mutex_);
  artifact_->writerActive_ = false;
}

std::uint32_t Artifact::Writer::reverify() {
  Artifact& a = *artifact_;
  const Manifest& m = a.manifest_;
  std::vector<std::byte> buf(m.chunkSize);
  std::uint32_t good = 0;
  bool changed = false;
  prefix256_.finish();
  prefix512_.finish();
  prefixChunks_ = 0;
  for (std::uint32_t i = 0; i < m.chunkCount(); ++i) {
    if (!a.hasChunk(i)) continue;
    const std::uint32_t len = m.chunkLength(i);
    preadAll(a.fd(), buf.data(), len, m.chunkOffset(i), a.dataPath());
    std::span<const std::byte> data(buf.data(), len);
    if (chunkMatches(m, i, data)) {
      ++good;
      if (i == prefixChunks_) {
        prefix256_.update(data);
        prefix512_.update(data);
        ++prefixChunks_;
      }
      continue;
    }
    changed = true;
    std::lock_guard lock(a.mutex_);
    a.present_[i] = false;
    --a.presentCount_;
    a.presentBytes_ -= len;
  }
  if (changed) {
    std::lock_guard lock(a.mutex_);
    a.journal_->rewrite(a.present_);
  }
  return good;
}

bool Artifact::Writer::writeChunk(std::uint32_t index, std::span<const std::byte> data) {
  Artifact& a = *artifact_;
  const Manifest& m = a.manifest_;
  if (index >= m.chunkCount() || !chunkMatches(m, index, data)) return false;
  if (a.hasChunk(index)) return true;
  pwriteAll(a.fd(), data.data(), data.size(), m.chunkOffset(index), a.dataPath());
  {
    std::lock_guard lock(a.mutex_);
    a.present_[index] = true;
    ++a.presentCount_;
    a.presentBytes_ += data.size();
    a.journal_->recordGood(index);
  }
  a.store_.notify({StoreEvent::Kind::chunk, a.id_, index});
  advancePrefix(data, index);
  // Start writeback early so completing the artifact does not wait for seconds of dirty pages.
  unsyncedBytes_ += data.size();
  if (unsyncedBytes_ >= (16u << 20)) {
    ::sync_file_range(a.fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
    unsyncedBytes_ = 0;
  }
  return true;
}

void Artifact::Writer::advancePrefix(std::span<const std::byte> data, std::uint32_t index) {
  Artifact& a = *artifact_;
  const Manifest& m = a.manifest_;
  if (index != prefixChunks_) return;
  prefix256_.update(data);
  prefix512_.update(data);
  ++prefixChunks_;
  // Chunks that arrived ahead of a gap are hashed now, from disk, checked once more on the way.
  std::vector<std::byte> buf;
  while (prefixChunks_ < m.chunkCount() && a.hasChunk(prefixChunks_)) {
    const std::uint32_t len = m.chunkLength(prefixChunks_);
    buf.resize(len);
    if (a.readChunk(prefixChunks_, buf.data()) != ReadStatus::ok) break;
    std::span<const std::byte> part(buf.data(), len);
    prefix256_.update(part);
    prefix512_.update(part);
    ++prefixChunks_;
  }
}

std::uint32_t Artifact::Writer::adoptFile(const fs::path& file) {
  Artifact& a = *artifact_;
  const Manifest& m = a.manifest_;
  const bool inPlace = fs::equivalent(file, a.dataPath());
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throwErrno("cannot open " + file.string());
  std::vector<std::byte> buf(m.chunkSize);
  std::uint32_t good = 0;
  for (std::uint32_t i = 0; i < m.chunkCount(); ++i) {
    const std::uint32_t len = m.chunkLength(i);
    try {
      preadAll(in.get(), buf.data(), len, m.chunkOffset(i), file);
    } catch (const Error&) {
      break;  // shorter than the manifest: the rest is missing
    }
    std::span<const std::byte> data(buf.data(), len);
    if (!chunkMatches(m, i, data)) continue;
    ++good;
    if (a.hasChunk(i)) continue;
    if (!inPlace) pwriteAll(a.fd(), data.data(), len, m.chunkOffset(i), a.dataPath());
    {
      std::lock_guard lock(a.mutex_);
      a.present_[i] = true;
      ++a.presentCount_;
      a.presentBytes_ += len;
      a.journal_->recordGood(i);
    }
    a.store_.notify({StoreEvent::Kind::chunk, a.id_, i});
    advancePrefix(data, i);
  }
  return good;
}

void Artifact::Writer::finalize() {
  Artifact& a = *artifact_;
  const Manifest& m = a.manifest_;
  if (a.chunksAvailable() != m.chunkCount())
    throw std::logic_error("finalize() before every chunk is present");
  std::string d256, d512;
  if (prefixChunks_ == m.chunkCount()) {
    d256 = prefix256_.finish();
    d512 = prefix512_.finish();
  } else {
    auto d = hashFile(a.dataPath());
    d256 = d.sha256;
    d512 = d.sha512;
  }
  if (d256 != m.sha256 || d512 != m.sha512) {
    {
      std::lock_guard lock(a.mutex_);
      a.present_.assign(m.chunkCount(), false);
      a.presentCount_ = 0;
      a.presentBytes_ = 0;
      a.journal_->rewrite(a.present_);
    }
    prefixChunks_ = 0;
    throw Error("artifact " + a.id_ + ": every chunk matched but the whole file's " +
                (d256 != m.sha256 ? "SHA-256" : "SHA-512") +
                " does not match the manifest; the manifest is inconsistent");
  }
  if (::fdatasync(a.fd()) != 0) throwErrno("cannot sync " + a.dataPath().string());
  const std::uint64_t seq = a.store_.nextSeq();
  a.dir_.writeFileAtomic("complete", std::to_string(seq) + "\n");
  {
    std::lock_guard lock(a.mutex_);
    a.complete_ = true;
    a.seq_ = seq;
    a.journal_.reset();
  }
  a.dir_.unlink("journal");
  a.store_.notify({StoreEvent::Kind::complete, a.id_, 0});
  if (m.kind == ArtifactKind::image) a.store_.applyRetention(m.imageName, m.output);
}

// --- ArtifactStore ----------------------------------------------------------------------------

namespace {
const StoreOptions& checked(const StoreOptions& o) {
  if (o.chunkSize < kMinChunkSize || o.chunkSize > kMaxChunkSize)
    throw Error("transfer chunk size " + std::to_string(o.chunkSize) + " is out of range");
  return o;
}
}  // namespace

ArtifactStore::ArtifactStore(StoreOptions options)
    : options_(checked(options)),
      root_(options_.dir),
      objects_(root_.sub("objects", true)),
      scratch_(sweepAndOpenScratch(root_)) {
  load();
}

ArtifactStore::~ArtifactStore() {
  try {
    StoreDir tmp = root_.sub("tmp");
    tmp.removeTree(scratch_.path().filename().string());
  } catch (const std::exception& e) {
    spdlog::warn("artifact store: cannot remove {}: {}", scratch_.path().string(), e.what());
  }
}

void ArtifactStore::load() {
  for (const auto& name : objects_.list()) {
    if (!objects_.isDirectory(name)) continue;
    if (name.starts_with(".")) {  // an import or removal interrupted by a crash
      objects_.removeTree(name);
      continue;
    }
    try {
      ids::require("artifact directory", ids::Kind::artifactId, name);
      StoreDir dir = objects_.sub(name);
      auto encoded = dir.readFile("manifest");
      std::string why;
      auto m = decodeManifest(encoded, &why);
      if (!m || m->id() != name) throw Error(why.empty() ? "manifest names another artifact" : why);
      std::uint64_t seq = 0;
      const bool complete = dir.exists("complete");
      if (complete) seq = std::stoull(dir.readFile("complete"));
      seq_ = std::max(seq_, seq);
      artifacts_[name] = std::make_shared<Artifact>(*this, std::move(dir), std::move(encoded),
                                                    std::move(*m), complete, seq);
    } catch (const std::exception& e) {
      spdlog::warn("artifact store: ignoring {}: {}", objects_.path(name).string(), e.what());
    }
  }
}

std::uint64_t ArtifactStore::nextSeq() {
  std::lock_guard lock(mutex_);
  return nextSeqLocked();
}

std::uint64_t ArtifactStore::nextSeqLocked() {
  const auto now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  seq_ = std::max(seq_ + 1, now);
  return seq_;
}

std::uint64_t ArtifactStore::freeBytes() const {
  struct statvfs st {};
  if (::fstatvfs(root_.fd(), &st) != 0) throwErrno("cannot statvfs " + options_.dir.string());
  const std::uint64_t free = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  return free > options_.reserveBytes ? free - options_.reserveBytes : 0;
}

void ArtifactStore::requireSpace(std::uint64_t need, const std::string& what,
                                 ErrorKind kind) const {
  const std::uint64_t avail = freeBytes();
  if (need <= avail) return;
  throw InsufficientSpace(
      "not enough disk space in " + options_.dir.string() + " for " + what + ": needs " +
          formatBytes(need) + " (" + std::to_string(need) + " bytes), " + formatBytes(avail) +
          " (" + std::to_string(avail) + " bytes) available" +
          (options_.reserveBytes ? " after the reserve of " + formatBytes(options_.reserveBytes)
                                 : ""),
      kind);
}

std::shared_ptr<Artifact> ArtifactStore::addScratchFile(const fs::path& file,
                                                        const ManifestOptions& mo,
                                                        const std::string& name) {
  StoreDir dir = scratch_.sub(name, true);
  dir.linkOrCopyIn(file, "data");
  Manifest m;
  {
    UniqueFd data = dir.open("data", O_RDONLY);
    m = buildManifest(data.get(), dir.path("data"), mo);
  }
  ids::require("artifact id", ids::Kind::artifactId, m.id());
  std::string encoded = encodeManifest(m);
  return std::make_shared<Artifact>(*this, std::move(dir), std::move(encoded), std::move(m), true,
                                    nextSeq());
}

std::shared_ptr<Artifact> ArtifactStore::addFile(const fs::path& file, const ManifestOptions& mo) {
  if (mo.kind == ArtifactKind::image) {
    ids::require("image name", ids::Kind::imageName, mo.imageName);
    ids::require("image version", ids::Kind::imageVersion, mo.imageVersion);
  }
  // Staged under a dot-name (removed at once when this fails, at load after a crash), then
  // renamed into place.
  StagedDir stage(objects_,
                  ".stage-" + std::to_string(::getpid()) + "-" + std::to_string(nextSeq()));
  stage.dir().linkOrCopyIn(file, "data");
  Manifest m;
  {
    UniqueFd data = stage.dir().open("data", O_RDONLY);
    m = buildManifest(data.get(), stage.dir().path("data"), mo);
  }
  const std::string id = ids::require("artifact id", ids::Kind::artifactId, m.id());
  std::string encoded = encodeManifest(m);
  if (auto existing = find(id); existing && existing->complete()) {
    if (existing->encodedManifest() == encoded) return existing;
    // The same bytes under another manifest: a reused build published for a new version.
    existing.reset();
    return relabel(id, std::move(encoded), std::move(m));
  }
  if (find(id)) remove(id);  // a partial of the same artifact: the local file wins
  stage.dir().writeFileAtomic("manifest", encoded);
  UniqueFd data = stage.dir().open("data", O_RDONLY);
  if (::fsync(data.get()) != 0) throwErrno("cannot sync " + stage.dir().path("data").string());
  const std::uint64_t seq = nextSeq();
  stage.dir().writeFileAtomic("complete", std::to_string(seq) + "\n");
  stage.commit(id);
  objects_.sync();
  auto artifact = std::make_shared<Artifact>(*this, objects_.sub(id), std::move(encoded),
                                             std::move(m), true, seq);
  auto handout = pin(artifact);  // before anyone else can see it
  {
    std::lock_guard lock(mutex_);
    artifacts_[id] = artifact;
  }
  notify({StoreEvent::Kind::added, id, 0});
  notify({StoreEvent::Kind::complete, id, 0});
  return handout;
}

agent::ArtifactInfo ArtifactStore::importFile(const fs::path& file, const std::string& imageName,
                                              const std::string& imageVersion,
                                              const std::string& metadataJson,
                                              definition::OutputKind output) {
  if (!fs::is_regular_file(file)) throw Error("cannot import " + file.string() + ": not a file");
  ManifestOptions mo;
  mo.imageName = imageName;
  mo.imageVersion = imageVersion;
  mo.metadata = metadataJson;
  mo.chunkSize = options_.chunkSize;
  mo.output = output;
  auto artifact = addFile(file, mo);
  auto info = artifact->info();
  artifact.reset();
  applyRetention(imageName, output);
  return info;
}

std::shared_ptr<Artifact> ArtifactStore::openPartial(const std::string& encoded) {
  std::string why;
  auto m = decodeManifest(encoded, &why);
  if (!m) throw Error("invalid manifest: " + why);
  const std::string id = ids::require("artifact id", ids::Kind::artifactId, m->id());
  const std::string digest = manifestDigest(encoded);
  if (auto existing = find(id)) {
    if (existing->digest() == digest) return existing;
    const bool sameBytes = existing->complete() && sameData(existing->manifest(), *m);
    existing.reset();
    // Bytes this store holds, verified, under another manifest (the next version of a reused
    // build): only the manifest changes, nothing is fetched again.
    if (sameBytes) return relabel(id, encoded, std::move(*m));
    // Same id, another manifest (other chunk size or metadata): start over, unless busy.
    if (!remove(id))
      throw Error("artifact " + id + " is in use with another manifest; try again later");
  }
  const std::uint64_t have = allocatedBytes(objects_, id + "/data");
  const std::uint64_t need = m->size > have ? m->size - have : 0;
  const std::string what = m->imageName.empty() ? id : m->imageName + " " + m->imageVersion;
  requireSpace(need, what);
  {
    // Whatever fails from here on (no space, an I/O error) removes the stage at once.
    StagedDir stage(objects_, ".stage-" + id);
    stage.dir().writeFileAtomic("manifest", encoded);
    UniqueFd fd = stage.dir().open("data", O_RDWR | O_CREAT, 0644);
    if (m->size > 0) {
      int rc = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(m->size));
      if (rc == ENOSPC) {
        requireSpace(need, what);  // the space went meanwhile: named like any shortage
        throw InsufficientSpace("disk full while allocating " + stage.dir().path("data").string());
      }
      if (rc != 0 && ::ftruncate(fd.get(), static_cast<off_t>(m->size)) != 0)
        throwErrno("cannot size " + stage.dir().path("data").string());
    }
    stage.commit(id);
  }
  objects_.sync();
  auto artifact =
      std::make_shared<Artifact>(*this, objects_.sub(id), encoded, std::move(*m), false, 0);
  auto handout = pin(artifact);  // before anyone else can see it
  {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = artifacts_.emplace(id, artifact);
    if (!inserted) return pin(it->second);
  }
  notify({StoreEvent::Kind::added, id, 0});
  return handout;
}

std::shared_ptr<Artifact> ArtifactStore::find(const std::string& id) const {
  ids::require("artifact id", ids::Kind::artifactId, id);
  {
    std::lock_guard lock(mutex_);
    auto it = artifacts_.find(id);
    if (it != artifacts_.end()) return pin(it->second);
  }
  // Another process (an operator's `imgpipe-transfer import`) may have completed it since this
  // store was loaded. Only complete artifacts are picked up: a partial one belongs to its writer.
  if (!objects_.exists(id + "/complete")) return nullptr;
  try {
    StoreDir dir = objects_.sub(id);
    auto encoded = dir.readFile("manifest");
    std::string why;
    auto m = decodeManifest(encoded, &why);
    if (!m || m->id() != id) return nullptr;
    const std::uint64_t seq = std::stoull(dir.readFile("complete"));
    auto a = std::make_shared<Artifact>(const_cast<ArtifactStore&>(*this), std::move(dir),
                                        std::move(encoded), std::move(*m), true, seq);
    std::lock_guard lock(mutex_);
    auto [it, inserted] = artifacts_.emplace(id, a);
    return pin(it->second);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::optional<fs::path> ArtifactStore::pathOf(const std::string& id) const {
  auto a = find(id);  // refuses what is not an artifact id
  if (!a || !a->complete()) return std::nullopt;
  return a->dataPath();
}

std::vector<agent::ArtifactInfo> ArtifactStore::inventory() const {
  std::vector<std::shared_ptr<Artifact>> images;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, a] : artifacts_)
      if (a->manifest().kind == ArtifactKind::image && a->complete()) images.push_back(a);
  }
  std::sort(images.begin(), images.end(),
            [](const auto& x, const auto& y) { return x->seq() < y->seq(); });
  std::vector<agent::ArtifactInfo> out;
  for (const auto& a : images)
    out.push_back(a->info());
  return out;
}

std::shared_ptr<Artifact> ArtifactStore::newestImage(const std::string& imageName,
                                                     definition::OutputKind output,
                                                     const std::string& excludeId) const {
  std::shared_ptr<Artifact> best;
  std::lock_guard lock(mutex_);
  for (const auto& [id, a] : artifacts_) {
    if (id == excludeId || a->manifest().kind != ArtifactKind::image ||
        a->manifest().imageName != imageName || a->manifest().output != output || !a->complete())
      continue;
    if (!best || a->seq() > best->seq()) best = a;
  }
  return pin(std::move(best));
}

std::shared_ptr<Artifact> ArtifactStore::pin(std::shared_ptr<Artifact> a) {
  if (!a) return a;
  a->pins_.fetch_add(1);
  Artifact* raw = a.get();
  return std::shared_ptr<Artifact>(raw, [held = std::move(a)](Artifact*) mutable {
    held->pins_.fetch_sub(1);
    held.reset();
  });
}

void ArtifactStore::applyRetention(const std::string& imageName, definition::OutputKind output) {
  std::vector<std::string> doomed;
  {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<Artifact>> versions;
    for (const auto& [id, a] : artifacts_)
      if (a->manifest().kind == ArtifactKind::image && a->manifest().imageName == imageName &&
          a->manifest().output == output && a->complete())
        versions.push_back(a);
    std::sort(versions.begin(), versions.end(),
              [](const auto& x, const auto& y) { return x->seq() > y->seq(); });
    for (size_t i = options_.retention; i < versions.size(); ++i)
      if (!versions[i]->pinned()) doomed.push_back(versions[i]->id());
  }
  for (const auto& id : doomed) {
    spdlog::info("artifact store: removing {} (more than {} versions of {} as {})",
                 ids::shortForm(id), options_.retention, imageName, definition::toString(output));
    remove(id);
  }
  // Deltas whose basis or target is gone are no use to anyone.
  std::vector<std::string> orphans;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, a] : artifacts_) {
      const auto& m = a->manifest();
      if (m.kind != ArtifactKind::delta || a->pinned()) continue;
      if (!artifacts_.count(m.basisId) || !artifacts_.count(m.targetId)) orphans.push_back(id);
    }
  }
  for (const auto& id : orphans)
    remove(id);
}

std::shared_ptr<Artifact> ArtifactStore::relabel(const std::string& id, std::string encoded,
                                                 Manifest m) {
  std::lock_guard lock(mutex_);
  auto it = artifacts_.find(id);
  if (it == artifacts_.end() || !it->second->complete())
    throw Error("artifact " + ids::shortForm(id) +
                " changed while its manifest was replaced; try again");
  // Held by a transfer or a registration under its old manifest: not under it.
  if (it->second->pinned())
    throw Error("artifact " + ids::shortForm(id) + " (" + it->second->manifest().imageName + " " +
                it->second->manifest().imageVersion +
                ") is in use under its earlier manifest; try again when that transfer ends");
  StoreDir dir = objects_.sub(id);
  dir.writeFileAtomic("manifest", encoded);
  const std::uint64_t seq = nextSeqLocked();
  dir.writeFileAtomic("complete", std::to_string(seq) + "\n");
  auto artifact = std::make_shared<Artifact>(*this, std::move(dir), std::move(encoded),
                                             std::move(m), true, seq);
  it->second = artifact;
  spdlog::info("artifact store: {} is now {} {}", ids::shortForm(id),
               artifact->manifest().imageName, artifact->manifest().imageVersion);
  return pin(std::move(artifact));
}

bool ArtifactStore::remove(const std::string& id) {
  ids::require("artifact id", ids::Kind::artifactId, id);
  std::shared_ptr<Artifact> a;
  {
    std::lock_guard lock(mutex_);
    auto it = artifacts_.find(id);
    if (it == artifacts_.end()) return true;
    if (it->second->pinned()) return false;
    a = it->second;
    artifacts_.erase(it);
  }
  // Renamed out of the way first: a crash mid-removal leaves a dot-directory, cleaned at load.
  const std::string trash = ".trash-" + id;
  try {
    objects_.removeTree(trash);
    objects_.rename(id, trash);
    objects_.removeTree(trash);
  } catch (const std::exception& e) {
    spdlog::warn("artifact store: removing {}: {}", ids::shortForm(id), e.what());
    objects_.removeTree(id);
  }
  notify({StoreEvent::Kind::removed, id, 0});
  return true;
}

std::uint64_t ArtifactStore::subscribe(Listener listener) {
  std::lock_guard lock(listenerMutex_);
  listeners_[nextToken_] = std::move(listener);
  return nextToken_++;
}

void ArtifactStore::unsubscribe(std::uint64_t token) {
  std::lock_guard lock(listenerMutex_);
  listeners_.erase(token);
}

void ArtifactStore::notify(const StoreEvent& event) {
  std::lock_guard lock(listenerMutex_);
  for (const auto& [token, fn] : listeners_)
    fn(event);
}

}  // namespace imgpipe::transfer
