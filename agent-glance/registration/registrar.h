#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/glance/glance_client.h"
#include "agent-glance/glance_config.h"
#include "agent-glance/registration/image_spec.h"
#include "common/agent/task.h"
#include "common/error.h"
#include "definition/outputs.h"

namespace imgpipe::glance {

// Registers one delivered artifact in Glance, exactly once.
//
// Ids. The image id is derived from the build: imageIdFor(buildId, generation), a UUIDv5. A
// retry, a restarted agent or a second agent working on the same build all compute the same id,
// so they find each other's image instead of creating another: Glance refuses a second create
// with an existing id (409).
//
// Generations. Glance reserves the id of a deleted image forever. When an image of this build
// is unusable (stuck in 'saving' because Glance died mid-upload, 'killed', a half-staged
// 'uploading', a stuck 'importing') it is deleted and the build moves to generation n+1, i.e. a
// fresh id. The registrar finds the current generation by probing from 0: an id that GETs 404
// and answers 409 to a create belongs to a deleted image, so it goes on to the next. A
// generation is only left after its image is gone, so at any time at most one non-deleted
// image of a build exists. Where the earlier image is still usable it is reused instead, which
// keeps the generation (and the id) stable in all common failures:
//   queued (never uploaded, or the client died mid-upload: Glance returns the image to queued)
//     -> its metadata is reconciled and the upload is done again (Glance cannot resume one);
//   uploading with the full size staged (import flow) -> imported;
//   active -> its size and os_hash_value are checked; if they match, it is the result.
//
// Verification. Before anything, the file's size, SHA-256 and SHA-512 must match the request
// and the file must be a self-contained qcow2 (checkQcow2), or for an iso an ISO 9660 image
// (checkIso) that is the one its build manifest names. A raw output is then expanded from the
// qcow2 (raw_expansion.h) and must match the build's digests of the raw; that is what is
// uploaded, as an image of its own (imageIdFor's output), as an iso is. After the upload Glance's
// size, os_hash_algo/os_hash_value must match too; otherwise the image is deleted and the
// registration fails (not retried: Glance stored something other than the verified file).
//
// Publishing. The image is created private and unprotected; visibility and `protected` are set
// only once it is active and verified, so other projects never see a half-uploaded image and a
// broken one can always be deleted.
//
// Retries. Glance or Keystone unreachable, 5xx, 408/429, or a state that changed under us (409
// on upload): the whole procedure runs again after a backoff, and reports "retrying, attempt n".
// Any other 4xx fails with Glance's (or Keystone's) own message.
//
// Older versions. Once active, other active images of the same image name (imgpipe_image
// property or Glance name) owned by the same project and not newer than this version are kept,
// hidden (os_hidden) or renamed (" (old)" appended), as the definition or config says.

struct RegistrationRequest {
  std::string jobId;
  std::string buildId;
  std::filesystem::path file;
  std::string sha256;  // hex
  std::string sha512;  // hex
  std::uint64_t size = 0;
  std::string manifestDigest;
  definition::ResolvedGlance spec;  // from the build manifest, resolved at build time
  // What is registered: the delivered file itself (a qcow2, an iso: `expanded` then holds the
  // build manifest's digests of that iso), or (raw) the raw expanded from the qcow2 into
  // `scratchDir` and checked against `expanded`, the build's digests of that expansion.
  definition::OutputKind output = definition::OutputKind::qcow2;
  definition::OutputDigests expanded;
  std::filesystem::path scratchDir;
};

struct RegistrationResult {
  Image image;  // as Glance shows it at the end
  unsigned generation = 0;
  bool reused = false;  // an earlier attempt's active image was verified and kept
  std::uint64_t bytesUploaded = 0;
  std::vector<std::string> olderVersions;  // ids hidden or renamed
};

struct RegistrationObserver {
  std::function<void(const agent::ProgressInfo&)> progress;
  std::function<void(agent::LogLevel, const std::string&)> log;
  // Named points of the procedure ("verified", "created", "uploaded", "active", "published");
  // tests use it to crash or corrupt at a precise moment.
  std::function<void(std::string_view)> checkpoint;
};

// Hashes the file (reporting progress) and compares size, SHA-256 and SHA-512 with the
// request. Throws Error (failed) naming what differs.
void verifyArtifact(const RegistrationRequest& request, std::stop_token stop,
                    const std::function<void(std::uint64_t done, std::uint64_t total)>& progress);

class Registrar {
 public:
  // Borrows the auth provider (shared by all tasks). One registrar per task.
  Registrar(const GlanceConfig& config, AuthProvider& auth, RegistrationObserver observer);

  // Blocks until the image is active and verified, or throws Error: failed for good, transient
  // when it ran out of retries, stopped when `stop` is requested.
  RegistrationResult run(const RegistrationRequest& request, std::stop_token stop);

  // Upper bound of generations tried before giving up (each one means a deleted leftover).
  static constexpr unsigned kMaxGenerations = 16;

 private:
  struct Attempt;
  RegistrationResult attemptOnce(const RegistrationRequest& request, unsigned attempt,
                                 std::stop_token stop);

  const GlanceConfig& config_;
  AuthProvider& auth_;
  RegistrationObserver observer_;
};

}  // namespace imgpipe::glance
