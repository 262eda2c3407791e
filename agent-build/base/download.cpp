#include "agent-build/base/download.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <cstdio>
#include <mutex>
#include <thread>

#include "common/backoff.h"
#include "common/error.h"
#include "common/hash.h"

namespace imgpipe::build {
namespace {

// Between attempts: 1 s, 2 s, 4 s ... 30 s.
constexpr std::chrono::milliseconds kRetryFirst{1000};
constexpr std::chrono::milliseconds kRetryMax{30000};

namespace fs = std::filesystem;

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  std::FILE* file = nullptr;
  std::string* memory = nullptr;
  std::uint64_t maxBytes = 0;
  std::uint64_t offset = 0;  // bytes already present when this attempt started
  const DownloadOptions* options = nullptr;
  bool tooBig = false;
};

size_t onData(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t->memory != nullptr) {
    if (t->memory->size() + n > t->maxBytes) {
      t->tooBig = true;
      return 0;
    }
    t->memory->append(data, n);
    return n;
  }
  return std::fwrite(data, 1, n, t->file);
}

int onProgress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->options->stop.stop_requested()) return 1;  // aborts the transfer
  if (t->options->progress && total > 0)
    t->options->progress(t->offset + static_cast<std::uint64_t>(now),
                         t->offset + static_cast<std::uint64_t>(total));
  return 0;
}

// One attempt. Returns "" on success, else why it failed (retryable).
std::string attempt(const std::string& url, Transfer& t, long& httpCode,
                    std::chrono::milliseconds timeout) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) throw Error("curl_easy_init failed");
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled link (no data for a minute) is abandoned and resumed, not waited on for hours.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "imgpipe-agent-build/" IMGPIPE_VERSION);
  if (const auto& proxy = t.options->proxy) {
    const bool https = url.rfind("https://", 0) == 0;
    curl_easy_setopt(curl, CURLOPT_PROXY, (https ? proxy->httpsOrHttp() : proxy->http).c_str());
    curl_easy_setopt(curl, CURLOPT_NOPROXY, proxy->noProxy.c_str());
  }
  if (t.offset > 0)
    curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(t.offset));
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &httpCode);
  curl_easy_cleanup(curl);
  if (rc == CURLE_OK) return {};
  return std::string(curl_easy_strerror(rc)) +
         (errbuf[0] ? std::string(": ") + errbuf : std::string());
}

std::string fileSha256(const fs::path& p) {
  return toHex(hashFile(p).sha256);
}

}  // namespace

void downloadFile(const std::string& url, const fs::path& dest, const DownloadOptions& options) {
  globalInit();
  fs::path partial = dest;
  partial += ".partial";
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  std::string lastError;
  Backoff backoff(kRetryFirst, kRetryMax);
  for (unsigned i = 0; i <= options.retries; ++i) {
    if (options.stop.stop_requested())
      throw Error("download of " + url + " stopped", ErrorKind::stopped);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::error_code ec;
    std::uint64_t have = fs::exists(partial, ec) ? fs::file_size(partial, ec) : 0;
    if (have > 0 && options.note)
      options.note("resuming " + url + " at " + std::to_string(have) + " bytes");
    Transfer t;
    t.options = &options;
    t.offset = have;
    t.file = std::fopen(partial.c_str(), "ab");
    if (t.file == nullptr) throwErrno("cannot write " + partial.string());
    long code = 0;
    lastError = attempt(url, t, code, left);
    std::fclose(t.file);
    if (lastError.empty()) {
      if (!options.expectedSha256.empty()) {
        auto got = fileSha256(partial);
        if (got != options.expectedSha256) {
          fs::remove(partial, ec);
          throw Error("checksum mismatch for " + url + ": expected sha256 " +
                      options.expectedSha256 + ", got " + got + " (the download was discarded)");
        }
      }
      fs::rename(partial, dest);
      return;
    }
    if (options.stop.stop_requested())
      throw Error("download of " + url + " stopped", ErrorKind::stopped);
    // 416: the partial file is already complete or longer than the resource; start over.
    if (code == 416 || (code >= 400 && code < 500 && code != 408 && code != 429)) {
      fs::remove(partial, ec);
      if (code != 416)
        throw Error("cannot download " + url + ": HTTP " + std::to_string(code) + " (" + lastError +
                    ")");
    }
    if (options.note)
      options.note("download attempt " + std::to_string(i + 1) + " failed: " + lastError);
    for (auto until = std::chrono::steady_clock::now() + backoff.next();
         std::chrono::steady_clock::now() < until;) {
      if (options.stop.stop_requested())
        throw Error("download of " + url + " stopped", ErrorKind::stopped);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  throw Error("cannot download " + url + " after " + std::to_string(options.retries + 1) +
              " attempts: " + lastError);
}

std::string downloadText(const std::string& url, const DownloadOptions& options,
                         std::uint64_t maxBytes) {
  globalInit();
  std::string lastError;
  Backoff backoff(kRetryFirst, kRetryMax);
  for (unsigned i = 0; i <= options.retries; ++i) {
    std::string body;
    Transfer t;
    t.options = &options;
    t.memory = &body;
    t.maxBytes = maxBytes;
    long code = 0;
    lastError = attempt(url, t, code, options.timeout);
    if (t.tooBig)
      throw Error("download of " + url + " is larger than " + std::to_string(maxBytes) + " bytes");
    if (lastError.empty()) {
      if (!options.expectedSha256.empty()) {
        auto got = toHex(sha256(body));
        if (got != options.expectedSha256)
          throw Error("checksum mismatch for " + url + ": expected sha256 " +
                      options.expectedSha256 + ", got " + got);
      }
      return body;
    }
    if (options.stop.stop_requested())
      throw Error("download of " + url + " stopped", ErrorKind::stopped);
    if (code >= 400 && code < 500 && code != 408 && code != 429)
      throw Error("cannot download " + url + ": HTTP " + std::to_string(code));
    std::this_thread::sleep_for(backoff.next());
  }
  throw Error("cannot download " + url + ": " + lastError);
}

}  // namespace imgpipe::build
