#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/agent/task.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/unique_fd.h"
#include "transfer/chunk_journal.h"
#include "transfer/manifest.h"
#include "transfer/store_dir.h"

namespace imgpipe::transfer {

// The artifact does not fit: names the directory, what is needed and what is available.
class InsufficientSpace : public Error {
 public:
  using Error::Error;
};

struct StoreOptions {
  std::filesystem::path dir;
  unsigned retention = 3;             // complete versions kept per image name and output
  std::uint32_t chunkSize = 1 << 20;  // for artifacts made here (imports, deltas)
  std::uint64_t reserveBytes = 0;     // never fill the disk beyond this much free space
};

// Something changed in the store; the artifact server parks requests on these.
struct StoreEvent {
  enum class Kind { added, chunk, dropped, complete, removed };
  Kind kind;
  std::string artifactId;
  std::uint32_t index = 0;
};

enum class ReadStatus { ok, missing, corrupt };

class ArtifactStore;

// One artifact in the store, complete or partial: <store>/objects/<id>/{manifest,data,journal,
// complete,origin}, every file opened beneath the artifact's directory (store_dir.h). Shared
// between the thread that fetches it and the reactor that serves it; every method is thread-safe.
// Chunks are written only through a Writer (one at a time).
class Artifact {
 public:
  Artifact(ArtifactStore& store, StoreDir dir, std::string encodedManifest, Manifest manifest,
           bool complete, std::uint64_t seq);
  Artifact(const Artifact&) = delete;
  Artifact& operator=(const Artifact&) = delete;

  const std::string& id() const { return id_; }
  const Manifest& manifest() const { return manifest_; }
  const std::string& encodedManifest() const { return encoded_; }
  const std::string& digest() const { return digest_; }
  // For code that needs a path (librsync, the glance upload); the store itself never opens it.
  std::filesystem::path dataPath() const { return dir_.path("data"); }
  const std::filesystem::path& dir() const { return dir_.path(); }

  bool complete() const;
  // A writer is filling it right now (a fetch of this agent is under way).
  bool receiving() const;
  std::uint64_t seq() const;
  std::uint32_t chunksAvailable() const;
  std::uint64_t bytesAvailable() const;
  bool hasChunk(std::uint32_t index) const;
  std::vector<std::uint32_t> missingChunks() const;

  // Reads chunk `index` into `out` (chunkLength bytes) and checks it against the manifest. A
  // chunk that no longer matches is dropped — from the journal and from what is served — and the
  // artifact is no longer complete; it is never handed out.
  ReadStatus readChunk(std::uint32_t index, std::byte* out);

  // Where a fetched artifact came from, so a relay can fetch a damaged chunk again.
  struct Origin {
    std::string endpoint;
    std::string serverKey;
  };
  void setOrigin(const Origin& origin);
  std::optional<Origin> origin() const;

  agent::ArtifactInfo info() const;

  // Held by someone the store handed it to (a transfer, a server, a registration, a delta): the
  // store neither removes it nor replaces its manifest meanwhile. Every pointer the store hands
  // out is a pin (ArtifactStore::pin); the store's own references are not.
  bool pinned() const { return pins_.load() > 0; }

  // The one thread that fills a partial artifact. Resource type: owning it is the right to write.
  class Writer {
    struct Key {};  // only Artifact::openWriter makes writers

   public:
    Writer(Key, std::shared_ptr<Artifact> artifact);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    Artifact& artifact() { return *artifact_; }
    // Re-reads every chunk the journal lists and forgets those that do not verify (the data of
    // a journaled chunk may not have reached the disk before a crash). Returns how many survived.
    std::uint32_t reverify();
    // Verifies and stores one chunk; false (and nothing written) when it does not match.
    bool writeChunk(std::uint32_t index, std::span<const std::byte> data);
    // All chunks present: checks the whole-file SHA-256 and SHA-512, syncs, marks complete.
    // Throws Error when the digests do not match the manifest (the artifact is then reset).
    void finalize();
    // Takes a file produced locally (a patched delta) as the data: every chunk is verified, the
    // good ones kept. Returns the number of chunks that verified.
    std::uint32_t adoptFile(const std::filesystem::path& file);

   private:
    friend class Artifact;
    void advancePrefix(std::span<const std::byte> justWritten, std::uint32_t index);

    std::shared_ptr<Artifact> artifact_;
    Hasher prefix256_{HashAlgo::sha256};
    Hasher prefix512_{HashAlgo::sha512};
    std::uint32_t prefixChunks_ = 0;  // chunks [0, prefixChunks_) are in the prefix hashers
    std::uint64_t unsyncedBytes_ = 0;
  };
  // Null when another writer holds the artifact (or it is complete).
  static std::unique_ptr<Writer> openWriter(const std::shared_ptr<Artifact>& artifact);

 private:
  friend class ArtifactStore;
  void markDropped(std::uint32_t index);
  std::atomic<int> pins_{0};  // see pinned()
  int fd() const { return fd_.get(); }

  ArtifactStore& store_;
  StoreDir dir_;
  std::string encoded_;
  Manifest manifest_;
  std::string id_;
  std::string digest_;
  UniqueFd fd_;

  mutable std::mutex mutex_;
  bool complete_;
  std::uint64_t seq_;
  std::vector<bool> present_;
  std::uint32_t presentCount_ = 0;
  std::uint64_t presentBytes_ = 0;
  std::unique_ptr<ChunkJournal> journal_;
  bool writerActive_ = false;
  bool prefixInvalid_ = false;  // a chunk inside the hashed prefix was dropped
};

// Every agent's artifact store. Thread-safe. Every id it is handed must be an
// ids::Kind::artifactId (ids::InvalidId otherwise), and every file it touches is opened beneath
// its directory (store_dir.h). Its scratch space (scratch()) is swept at start.
class ArtifactStore {
 public:
  explicit ArtifactStore(StoreOptions options);
  ~ArtifactStore();
  ArtifactStore(const ArtifactStore&) = delete;
  ArtifactStore& operator=(const ArtifactStore&) = delete;

  const StoreOptions& options() const { return options_; }
  // This store's own directory beneath <store>/tmp (signature uploads, delta work), removed
  // when the store is closed, swept at the next start after a crash.
  const StoreDir& scratch() const { return scratch_; }

  // The build agent's door: takes a finished image (hard link when on the same filesystem,
  // else a copy), computes its manifest and keeps it as a complete artifact.
  agent::ArtifactInfo importFile(const std::filesystem::path& file, const std::string& imageName,
                                 const std::string& imageVersion,
                                 const std::string& metadataJson = {},
                                 definition::OutputKind output = definition::OutputKind::qcow2);
  // Adds a locally made file (a computed delta) as a complete artifact, moving it in.
  std::shared_ptr<Artifact> addFile(const std::filesystem::path& file,
                                    const ManifestOptions& options);
  // A locally made file as a complete artifact in scratch space, in directory `name` there: what
  // is served but must not be kept (a delta from a peer's uploaded signature). Never found,
  // listed or retained by the store; the caller removes scratch().removeTree(name) when done, and
  // the store's scratch goes with the store anyway.
  std::shared_ptr<Artifact> addScratchFile(const std::filesystem::path& file,
                                           const ManifestOptions& options, const std::string& name);

  // A partial artifact to fetch into (or the existing one, partial or complete). Checks free
  // space and preallocates the data file; throws InsufficientSpace naming path, need, available.
  std::shared_ptr<Artifact> openPartial(const std::string& encodedManifest);

  std::shared_ptr<Artifact> find(const std::string& id) const;
  std::optional<std::filesystem::path> pathOf(const std::string& id) const;  // complete only
  std::vector<agent::ArtifactInfo> inventory() const;  // complete images, oldest first
  // The newest complete image of `imageName` as `output` other than `excludeId`: a delta basis
  // (an iso is no basis for a qcow2).
  std::shared_ptr<Artifact> newestImage(const std::string& imageName, definition::OutputKind output,
                                        const std::string& excludeId) const;
  std::uint64_t freeBytes() const;  // free space beyond the reserve
  // Throws InsufficientSpace (of `kind`) unless `need` bytes fit beside the reserve, naming the
  // store, `what`, the need and what is available.
  void requireSpace(std::uint64_t need, const std::string& what,
                    ErrorKind kind = ErrorKind::failed) const;

  // Keeps the newest `retention` complete versions of the image name as `output` (and deltas
  // between kept versions); artifacts in use by a transfer are left for the next round.
  void applyRetention(const std::string& imageName, definition::OutputKind output);
  bool remove(const std::string& id);

  using Listener = std::function<void(const StoreEvent&)>;
  std::uint64_t subscribe(Listener listener);
  void unsubscribe(std::uint64_t token);

 private:
  friend class Artifact;
  void notify(const StoreEvent& event);
  std::uint64_t nextSeq();
  std::uint64_t nextSeqLocked();  // mutex_ held
  // A complete artifact takes another manifest of the same bytes (a new version's metadata).
  std::shared_ptr<Artifact> relabel(const std::string& id, std::string encoded, Manifest manifest);
  void load();

  StoreOptions options_;
  StoreDir root_;
  StoreDir objects_;
  StoreDir scratch_;
  mutable std::mutex mutex_;
  // A pointer to `a` for someone outside the store: `a` is pinned while any copy of it lives.
  static std::shared_ptr<Artifact> pin(std::shared_ptr<Artifact> a);

  mutable std::map<std::string, std::shared_ptr<Artifact>> artifacts_;  // find() loads lazily
  std::uint64_t seq_ = 0;
  std::mutex listenerMutex_;
  std::map<std::uint64_t, Listener> listeners_;
  std::uint64_t nextToken_ = 1;
};

}  // namespace imgpipe::transfer
