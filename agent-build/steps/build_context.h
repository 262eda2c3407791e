#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/disk/attached_disk.h"
#include "agent-build/disk/partitions.h"
#include "agent-build/disk/qemu_img.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/mount.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/runner/job_spec.h"
#include "agent-build/util/exec.h"
#include "agent-build/util/file_lock.h"
#include "common/hash.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Bump when a change to the steps changes what a build produces from the same inputs: results
// of older recipes are then not reused.
inline constexpr int kRecipeVersion = 1;

// The base a build starts from, wherever it came from. Value type.
struct ResolvedBase {
  std::filesystem::path file;
  std::string format;     // one of definition::kDiskBaseFormats
  std::string sha256Hex;  // of the base as fetched (packed)
  std::uint64_t virtualSize = 0;
  std::uint64_t allocatedSize = 0;
  std::string kind;      // path, url, debootstrap
  std::string source;    // the path, the URL, or the debootstrap recipe
  bool cached = false;   // served from the base cache without fetching
  std::string unpacked;  // how `file` was unpacked (xz, vagrant-box, ...), or empty
};

// Contents the definition points at (files, scripts, repository keys), fetched once at the
// start so that their digests are part of the result key. Index-aligned with the definition.
struct ResolvedInputs {
  std::vector<std::string> files;
  std::vector<std::string> scripts;
  std::vector<std::string> repositoryKeys;
};

struct PackageInfo {
  std::string name, version, architecture;
};

struct StepTiming {
  std::string step;
  std::uint64_t durationMs = 0;
  std::string status;  // ok, skipped
  std::string message;
};

// A finished earlier build with the same inputs (see ResultCache).
struct ReusableResult {
  std::filesystem::path image;
  nlohmann::json manifest;
};

// Everything a build's steps share. The resource members are declared in acquisition order, so
// that whatever happens they are destroyed in reverse: chroot session, image fs, root mount,
// attached disk, base lock. Steps release them explicitly on the success path (unmount step).
class BuildContext {
 public:
  BuildContext(JobSpec job, definition::ImageDefinition def, BuildLog& log, std::stop_token stop,
               std::filesystem::path workDir);

  const JobSpec job;
  const definition::ImageDefinition def;
  const BuildConfig& config;
  BuildLog& log;
  const std::stop_token stop;
  const std::filesystem::path workDir;
  const std::chrono::system_clock::time_point startedAt;
  const std::string
      version;  // the job's (JobSpec::imageVersion): one version from submit to Glance

  // Runs commands for this build: stop token, command timeout, output into the build log.
  ExecContext exec() const;
  ExecContext exec(std::chrono::milliseconds timeout) const;
  void checkStop() const;
  // `progress(done, total)` for the current step.
  std::function<void(std::uint64_t, std::uint64_t)> progress() const;

  // ---- state, filled in by the steps in order ----
  std::string toolVersion;  // qemu-img version
  ResolvedBase base;
  ResolvedInputs inputs;
  std::string contentDigest;  // result key: inputs that decide the image's bytes
  std::optional<ReusableResult> reusable;
  WorkImage image;
  Partition root;
  SavedEntry resolvConfBefore;  // as the base had them, for the validation
  SavedEntry policyRcdBefore;
  std::vector<PackageInfo> packages;
  std::filesystem::path output;  // the compacted qcow2 in the work dir
  ImageInfo outputInfo;
  FileDigests outputDigests;
  std::optional<FileDigests> rawDigests;  // outputs: [raw]: of the qcow2 expanded to raw
  std::filesystem::path liveIso;          // outputs: [iso]: the live ISO in the work dir
  std::optional<FileDigests> isoDigests;
  nlohmann::json validation = nlohmann::json::object();
  std::vector<StepTiming> timings;
  // Where the manifest step published the result.
  std::filesystem::path finalImage, finalManifest, finalLog;
  std::string manifestJson;

  // ---- resources, in acquisition order (destroyed in reverse) ----
  std::optional<FileLock> baseLock;  // keeps the cached base from being evicted while in use
  std::unique_ptr<AttachedDisk> disk;
  std::optional<Mount> rootMount;
  std::unique_ptr<ChrootSession> chroot;

  std::filesystem::path rootDir() const { return workDir / "root"; }
  ChrootSession& session();  // throws when the root is not mounted
};

// The `<name>-<version>` stem of output files.
std::string outputStem(const BuildContext& ctx);
// ISO 8601 UTC ("2026-11-22T03:15:00Z").
std::string isoTime(std::chrono::system_clock::time_point t);

}  // namespace imgpipe::build
