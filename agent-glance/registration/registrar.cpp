#include "agent-glance/registration/registrar.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "agent-glance/iso_check.h"
#include "agent-glance/qcow2_check.h"
#include "agent-glance/raw_expansion.h"
#include "agent-glance/registration/image_id.h"
#include "common/backoff.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/rate_meter.h"
#include "common/unique_fd.h"
#include "common/units.h"

namespace imgpipe::glance {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kStep = "register";
constexpr milliseconds kPollInterval{500};
constexpr milliseconds kProgressInterval{500};

// Sleeps, returning early (false) when stop is requested.
bool sleepFor(milliseconds d, std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  return !cv.wait_for(lock, stop, d, [] { return false; }) && !stop.stop_requested();
}

// formatDuration rounds to whole seconds; backoff delays start below one.
std::string formatDelay(milliseconds d) {
  if (d >= milliseconds(10'000)) return formatDuration(d);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// The image changed state under us (409 on an upload, a status that moved): resolving again
// sorts it out.
Error stateChanged(const std::string& what) {
  return Error(what, ErrorKind::transient);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Upload progress with rate and ETA, at most every kProgressInterval.
class ProgressMeter {
 public:
  ProgressMeter(const RegistrationObserver& observer, unsigned retries, std::string state)
      : observer_(observer), retries_(retries), state_(std::move(state)) {}

  void update(std::uint64_t done, std::uint64_t total, bool force = false) {
    if (!observer_.progress) return;
    auto now = Clock::now();
    rate_.sample(done, now);
    if (!force && now - last_ < kProgressInterval) return;
    last_ = now;
    agent::ProgressInfo p;
    p.step = kStep;
    p.done = done;
    p.total = total;
    p.retries = retries_;
    p.state = state_;
    p.rateBps = rate_.perSecond();
    p.etaS = rate_.etaSeconds(done, total);
    observer_.progress(p);
  }

 private:
  const RegistrationObserver& observer_;
  unsigned retries_;
  std::string state_;
  RateMeter rate_;
  Clock::time_point last_{};
};

}  // namespace

void verifyArtifact(const RegistrationRequest& req, std::stop_token stop,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  UniqueFd fd(::open(req.file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open the artifact " + req.file.string());
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  Hasher h256(HashAlgo::sha256), h512(HashAlgo::sha512);
  std::vector<std::byte> buf(1 << 20);
  std::uint64_t done = 0;
  for (;;) {
    if (stop.stop_requested())
      throw Error("verification of " + req.file.string() + " stopped", ErrorKind::stopped);
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("cannot read " + req.file.string());
    if (n == 0) break;
    std::span<const std::byte> part(buf.data(), static_cast<size_t>(n));
    h256.update(part);
    h512.update(part);
    done += static_cast<std::uint64_t>(n);
    if (progress) progress(done, req.size);
  }
  const std::string got256 = toHex(h256.finish()), got512 = toHex(h512.finish());
  std::string problems;
  if (done != req.size)
    problems +=
        "; size is " + std::to_string(done) + " bytes, expected " + std::to_string(req.size);
  if (got256 != lower(req.sha256)) problems += "; sha256 is " + got256 + ", expected " + req.sha256;
  if (got512 != lower(req.sha512)) problems += "; sha512 is " + got512 + ", expected " + req.sha512;
  if (!problems.empty())
    throw Error("the artifact " + req.file.string() + " does not match its manifest" + problems +
                "; nothing was registered");
}

// One pass of the procedure over one connection. Everything it does is safe to repeat.
struct Registrar::Attempt {
  const GlanceConfig& config;
  AuthProvider& auth;
  const RegistrationObserver& observer;
  const RegistrationRequest& req;
  unsigned attempt;
  std::stop_token stop;
  std::shared_ptr<spdlog::logger> logger;
  http::HttpClient http;
  GlanceClient glance;
  std::map<std::string, std::string> properties;
  RegistrationResult result;

  Attempt(const GlanceConfig& c, AuthProvider& a, const RegistrationObserver& o,
          const RegistrationRequest& r, unsigned n, std::stop_token s)
      : config(c),
        auth(a),
        observer(o),
        req(r),
        attempt(n),
        stop(s),
        logger(log::forJob(r.jobId, kStep)),
        http(c.http),
        glance(http, a, s),
        properties(
            glanceProperties(r.spec, {r.buildId, lower(r.sha256), r.manifestDigest, r.output})) {}

  void note(agent::LogLevel level, const std::string& message) {
    switch (level) {
      case agent::LogLevel::info:
        logger->info("{}", message);
        break;
      case agent::LogLevel::warn:
        logger->warn("{}", message);
        break;
      case agent::LogLevel::error:
        logger->error("{}", message);
        break;
    }
    if (observer.log) observer.log(level, message);
  }

  void checkpoint(std::string_view name) {
    if (observer.checkpoint) observer.checkpoint(name);
  }

  json createBody(const std::string& id) {
    json body = {{"id", id},
                 {"name", req.spec.displayName},
                 {"disk_format", definition::diskFormatOf(req.output)},
                 {"container_format", "bare"},
                 // Published (visibility, protected) only once active and verified.
                 {"visibility", "private"},
                 {"protected", false},
                 {"min_disk", req.spec.minDiskGiB},
                 {"min_ram", req.spec.minRamMiB},
                 {"tags", req.spec.tags}};
    for (const auto& [k, v] : properties)
      body[k] = v;
    return body;
  }

  void deleteImage(const Image& img, const std::string& why) {
    glance.remove(img.id);
    note(agent::LogLevel::warn, "deleted image " + img.id + " (" + img.status + "): " + why);
  }

  // Polls until the image leaves `status` or `limit` passes. Returns the image (nullopt: gone).
  std::optional<Image> waitWhile(const std::string& id, const std::string& status,
                                 milliseconds limit) {
    const auto until = Clock::now() + limit;
    for (;;) {
      auto img = glance.get(id);
      if (!img || img->status != status || Clock::now() >= until) return img;
      if (!sleepFor(kPollInterval, stop))
        throw Error("stopped while waiting for Glance", ErrorKind::stopped);
    }
  }

  // Finds this build's usable image, or creates it; see the class comment in registrar.h.
  Image resolve() {
    for (unsigned gen = 0; gen < kMaxGenerations; ++gen) {
      const std::string id = imageIdFor(req.buildId, gen, req.output);
      std::optional<Image> img = glance.get(id);
      if (!img) {
        try {
          Image created = glance.create(createBody(id));
          result.generation = gen;
          note(agent::LogLevel::info,
               "created image " + id + " '" + req.spec.displayName + "'" +
                   (gen > 0 ? " (generation " + std::to_string(gen) + ")" : ""));
          checkpoint("created");
          return created;
        } catch (const http::ApiError& e) {
          if (e.status() != 409) throw;
          // Either created concurrently, or the id of a deleted image (reserved for ever).
          img = glance.get(id);
          if (!img) continue;
        }
      }
      if (img->status == "importing") img = waitWhile(id, "importing", config.importTimeout);
      if (img && img->status == "saving") img = waitWhile(id, "saving", config.savingGrace);
      if (!img || img->status == "deleted" || img->status == "pending_delete") continue;

      const std::string& st = img->status;
      if (st == "active" || st == "queued") {
        result.generation = gen;
        return *img;
      }
      if (st == "uploading" && config.uploadMethod == UploadMethod::import &&
          img->size == req.size) {
        result.generation = gen;
        return *img;  // fully staged by an earlier attempt: import it
      }
      if (st == "deactivated")
        throw Error("image " + id + " of build " + req.buildId +
                    " is deactivated in Glance (an administrator's decision); "
                    "reactivate or delete it, then retry");
      if (st == "saving" || st == "killed" || st == "uploading" || st == "importing") {
        deleteImage(*img, "left unusable by an earlier attempt; moving to a new image id");
        continue;
      }
      throw Error("image " + id + " is in an unexpected state '" + st + "'");
    }
    throw Error("build " + req.buildId + " has used " + std::to_string(kMaxGenerations) +
                " image ids, each deleted after a failed attempt; giving up");
  }

  // Brings a queued image's metadata to what this request wants (it may be an earlier
  // attempt's, made with an older config).
  Image reconcile(const Image& img) {
    json ops = json::array();
    if (img.name != req.spec.displayName)
      ops.push_back({{"op", "replace"}, {"path", "/name"}, {"value", req.spec.displayName}});
    if (img.minDisk != req.spec.minDiskGiB)
      ops.push_back({{"op", "replace"}, {"path", "/min_disk"}, {"value", req.spec.minDiskGiB}});
    if (img.minRam != req.spec.minRamMiB)
      ops.push_back({{"op", "replace"}, {"path", "/min_ram"}, {"value", req.spec.minRamMiB}});
    std::set<std::string> haveTags(img.tags.begin(), img.tags.end());
    std::set<std::string> wantTags(req.spec.tags.begin(), req.spec.tags.end());
    if (haveTags != wantTags)
      ops.push_back({{"op", "replace"}, {"path", "/tags"}, {"value", req.spec.tags}});
    for (const auto& [k, v] : properties) {
      auto it = img.properties.find(k);
      if (it == img.properties.end())
        ops.push_back({{"op", "add"}, {"path", "/" + k}, {"value", v}});
      else if (it->second != v)
        ops.push_back({{"op", "replace"}, {"path", "/" + k}, {"value", v}});
    }
    if (ops.empty()) return img;
    note(agent::LogLevel::info, "updating the metadata of queued image " + img.id);
    return glance.patch(img.id, ops);
  }

  // Streams the file; Glance hashes what it stores, we hash what we send.
  std::string send(const Image& img) {
    Hasher sent(HashAlgo::sha512);
    ProgressMeter meter(observer, attempt - 1, "");  // the first attempt has retried nothing
    UploadObserver obs;
    obs.progress = [&](std::uint64_t done, std::uint64_t total) { meter.update(done, total); };
    obs.data = [&](std::span<const std::byte> data) {
      if (data.empty())
        sent = Hasher(HashAlgo::sha512);
      else
        sent.update(data);
    };
    const auto t0 = Clock::now();
    const bool viaImport = config.uploadMethod == UploadMethod::import;
    note(agent::LogLevel::info, std::string(viaImport ? "staging " : "uploading ") +
                                    formatBytes(req.size) + " to image " + img.id);
    try {
      if (viaImport)
        glance.stage(img.id, req.file, obs);
      else
        glance.upload(img.id, req.file, obs);
    } catch (const http::ApiError& e) {
      if (e.status() == 409) throw stateChanged(e.what());
      throw;
    }
    meter.update(req.size, req.size, true);
    result.bytesUploaded += req.size;
    auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
    note(agent::LogLevel::info,
         "sent " + formatBytes(req.size) + " in " +
             formatDuration(std::chrono::duration_cast<milliseconds>(Clock::now() - t0)) +
             (secs > 0 ? " (" +
                             formatBytes(
                                 static_cast<std::uint64_t>(static_cast<double>(req.size) / secs)) +
                             "/s)"
                       : ""));
    checkpoint("uploaded");
    return toHex(sent.finish());
  }

  Image import(const Image& img) {
    note(agent::LogLevel::info, "importing image " + img.id + " (glance-direct)");
    try {
      glance.importGlanceDirect(img.id);
    } catch (const http::ApiError& e) {
      if (e.status() == 409) throw stateChanged(e.what());
      throw;
    }
    if (observer.progress)
      observer.progress({.step = kStep,
                         .done = req.size,
                         .total = req.size,
                         .retries = attempt - 1,
                         .state = "importing"});
    const auto until = Clock::now() + config.importTimeout;
    for (;;) {
      auto now = glance.get(img.id);
      if (!now) throw stateChanged("image " + img.id + " disappeared during its import");
      if (now->status == "active") return *now;
      const std::string failed = now->property("os_glance_failed_import");
      if (now->status == "queued" && !failed.empty())
        throw Error("Glance failed to import image " + img.id + " into store(s) " + failed +
                    "; see the glance-api log");
      if (now->status != "importing" && now->status != "uploading")
        throw stateChanged("image " + img.id + " went to '" + now->status + "' during its import");
      if (Clock::now() >= until)
        throw stateChanged("import of image " + img.id + " still running after " +
                           formatDuration(config.importTimeout));
      if (!sleepFor(kPollInterval, stop))
        throw Error("stopped during the import", ErrorKind::stopped);
    }
  }

  // Glance's own view of the stored data against the manifest; a mismatch deletes the image.
  void verifyRemote(const Image& img, const std::string& sentSha512) {
    std::string problems;
    if (img.size != req.size)
      problems += "; size is " + (img.size ? std::to_string(*img.size) : std::string("unset")) +
                  ", expected " + std::to_string(req.size);
    const std::string algo = img.osHashAlgo;
    const std::string expected = algo == "sha256" ? lower(req.sha256) : lower(req.sha512);
    if (algo != "sha512" && algo != "sha256")
      problems += "; Glance hashes with '" + algo + "', imgpipe can check sha512 or sha256";
    else if (lower(img.osHashValue) != expected)
      problems += "; os_hash_value (" + algo + ") is " + img.osHashValue + ", expected " + expected;
    if (problems.empty()) {
      note(agent::LogLevel::info, "verified image " + img.id + ": size " +
                                      std::to_string(req.size) + " and " + algo +
                                      " match the manifest");
      return;
    }
    if (!sentSha512.empty() && sentSha512 != lower(req.sha512))
      problems +=
          "; the bytes sent hash to " + sentSha512 + " (the file changed after it was verified)";
    std::string outcome;
    try {
      glance.remove(img.id);
      outcome = "the image was deleted";
    } catch (const std::exception& e) {
      outcome =
          "deleting the image failed (" + std::string(e.what()) + "); the next attempt deletes it";
    }
    const std::string msg =
        "Glance's image " + img.id + " does not match the manifest" + problems + "; " + outcome;
    note(agent::LogLevel::error, msg);
    throw Error(msg);
  }

  Image publish(const Image& img) {
    json ops = json::array();
    const std::string visibility(definition::toString(req.spec.visibility));
    if (img.visibility != visibility)
      ops.push_back({{"op", "replace"}, {"path", "/visibility"}, {"value", visibility}});
    if (img.protectedFlag != req.spec.protectedFlag)
      ops.push_back({{"op", "replace"}, {"path", "/protected"}, {"value", req.spec.protectedFlag}});
    if (ops.empty()) return img;
    Image out = glance.patch(img.id, ops);
    note(agent::LogLevel::info, "published image " + img.id + " (visibility " + out.visibility +
                                    (out.protectedFlag ? ", protected" : "") + ")");
    return out;
  }

  void handleOlderVersions(const Image& ours) {
    const definition::OlderVersions mode = req.spec.olderVersions.value_or(config.olderVersions);
    if (mode == definition::OlderVersions::keep) return;
    const std::string owner = auth.projectId(stop);
    std::map<std::string, Image> candidates;
    // visibility=all: community images are left out of a plain listing.
    ListFilter byImage{.properties = {{"imgpipe_image", req.spec.name}},
                       .status = "active",
                       .owner = owner,
                       .visibility = "all"};
    ListFilter byName{
        .name = req.spec.displayName, .status = "active", .owner = owner, .visibility = "all"};
    for (const auto* f : {&byImage, &byName})
      for (auto& img : glance.list(*f))
        candidates.emplace(img.id, std::move(img));
    for (const auto& [id, img] : candidates) {
      if (id == ours.id || img.property("imgpipe_build_id") == req.buildId) continue;
      if (img.diskFormat != ours.diskFormat) continue;  // a qcow2 is no older version of a raw
      if (!owner.empty() && img.owner != owner) continue;
      const std::string version = img.property("imgpipe_version");
      if (!version.empty() && !req.spec.version.empty() &&
          compareVersions(version, req.spec.version) > 0)
        continue;  // a newer version stays as it is
      json ops = json::array();
      if (mode == definition::OlderVersions::hide && !img.osHidden)
        ops.push_back({{"op", "replace"}, {"path", "/os_hidden"}, {"value", true}});
      if (mode == definition::OlderVersions::rename && !img.name.ends_with(" (old)"))
        ops.push_back({{"op", "replace"}, {"path", "/name"}, {"value", img.name + " (old)"}});
      if (ops.empty()) continue;
      try {
        glance.patch(id, ops);
        result.olderVersions.push_back(id);
        note(agent::LogLevel::info,
             std::string(mode == definition::OlderVersions::hide ? "hid" : "renamed") +
                 " older version " + id + " '" + img.name + "'" +
                 (version.empty() ? "" : " (" + version + ")"));
      } catch (const http::ApiError& e) {
        if (e.kind() == ErrorKind::transient) throw;
        // Our image is registered; an older one we may not touch is reported, not fatal.
        note(agent::LogLevel::warn, "could not update older version " + id + ": " + e.what());
      }
    }
  }

  RegistrationResult run() {
    Image img = resolve();
    std::string sent;
    if (img.status == "active") {
      result.reused = true;
      note(agent::LogLevel::info, "found image " + img.id + " already active; verifying it");
    } else {
      if (img.status == "queued") {
        img = reconcile(img);
        sent = send(img);
        if (config.uploadMethod == UploadMethod::import) img = import(img);
      } else {  // uploading: staged completely by an earlier attempt
        img = import(img);
      }
      auto after = glance.get(img.id);
      if (!after) throw stateChanged("image " + img.id + " disappeared right after its upload");
      img = *after;
      if (img.status != "active")
        throw stateChanged("image " + img.id + " is '" + img.status + "' after its upload");
    }
    verifyRemote(img, sent);
    checkpoint("active");
    img = publish(img);
    checkpoint("published");
    handleOlderVersions(img);
    result.image = img;
    return result;
  }
};

Registrar::Registrar(const GlanceConfig& config, AuthProvider& auth, RegistrationObserver observer)
    : config_(config), auth_(auth), observer_(std::move(observer)) {}

RegistrationResult Registrar::attemptOnce(const RegistrationRequest& request, unsigned attempt,
                                          std::stop_token stop) {
  Attempt a(config_, auth_, observer_, request, attempt, stop);
  return a.run();
}

RegistrationResult Registrar::run(const RegistrationRequest& request, std::stop_token stop) {
  auto logger = log::forJob(request.jobId, kStep);
  auto note = [&](agent::LogLevel level, const std::string& msg) {
    if (level == agent::LogLevel::warn)
      logger->warn("{}", msg);
    else
      logger->info("{}", msg);
    if (observer_.log) observer_.log(level, msg);
  };

  {
    ProgressMeter meter(observer_, 0, "verifying");
    verifyArtifact(request, stop, [&](std::uint64_t d, std::uint64_t t) { meter.update(d, t); });
  }
  // What is registered (min_disk among it) was resolved once, at build time
  // (definition::resolveGlance); here the file is only checked to be what it claims.
  const auto carrier = definition::carrierOf(request.output);
  if (carrier == definition::OutputKind::iso) {
    checkIso(request.file);
    // The delivered file must be the one the build manifest it carries names.
    if (lower(request.sha256) != request.expanded.sha256 ||
        lower(request.sha512) != request.expanded.sha512 || request.size != request.expanded.size)
      throw Error("the delivered iso (sha256 " + lower(request.sha256) +
                  ") is not the one its build manifest names (sha256 " + request.expanded.sha256 +
                  ")");
  } else {
    checkQcow2(request.file,
               {.maxVirtualSize = config_.maxVirtualSize, .timeout = config_.qemuImgTimeout}, stop);
  }
  note(agent::LogLevel::info, "verified " + request.file.filename().string() + " (" +
                                  formatBytes(request.size) + ", sha256 and sha512 match; " +
                                  std::string(definition::toString(carrier)) + " checked)");
  std::optional<ExpandedRaw> raw;
  RegistrationRequest upload = request;
  if (request.output == definition::OutputKind::raw) {
    if (observer_.progress) observer_.progress({.step = kStep, .state = "expanding"});
    raw.emplace(request.file, request.scratchDir, request.expanded, config_.qemuImgTimeout, stop);
    upload.file = raw->file();
    upload.size = request.expanded.size;
    upload.sha256 = request.expanded.sha256;
    upload.sha512 = request.expanded.sha512;
    note(agent::LogLevel::info, "expanded to raw " + raw->file().filename().string() + " (" +
                                    formatBytes(upload.size) +
                                    ", sha256 and sha512 match the build's)");
  }
  if (observer_.checkpoint) observer_.checkpoint("verified");

  const auto start = Clock::now();
  Backoff backoff(config_.retry.initial, config_.retry.max);
  for (unsigned attempt = 1;; ++attempt) {
    try {
      return attemptOnce(upload, attempt, stop);
    } catch (const std::exception& e) {
      if (kindOf(e) != ErrorKind::transient) throw;
      const auto delay = backoff.next();
      const auto elapsed = Clock::now() - start;
      const bool outOfAttempts =
          config_.retry.maxAttempts != 0 && attempt >= config_.retry.maxAttempts;
      if (outOfAttempts || elapsed + delay > config_.retry.giveUpAfter)
        throw Error("giving up after " + std::to_string(attempt) + " attempt(s) in " +
                        formatDuration(std::chrono::duration_cast<milliseconds>(elapsed)) +
                        "; last error: " + e.what(),
                    ErrorKind::transient);
      note(agent::LogLevel::warn, "attempt " + std::to_string(attempt) + " failed: " + e.what() +
                                      "; retrying in " + formatDelay(delay));
      if (observer_.progress)
        observer_.progress({.step = kStep, .retries = attempt, .state = "retrying"});
      if (!sleepFor(delay, stop)) throw Error("stopped while waiting to retry", ErrorKind::stopped);
    }
  }
}

}  // namespace imgpipe::glance
