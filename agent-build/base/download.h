#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include "agent-build/config/build_proxy.h"
#include "common/error.h"

namespace imgpipe::build {

struct DownloadOptions {
  std::string expectedSha256;                            // lowercase hex; empty: not verified
  std::chrono::milliseconds timeout{2ll * 3600 * 1000};  // whole download, all attempts
  unsigned retries = 5;
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
  std::function<void(const std::string&)> note;  // retries, resumes
  std::stop_token stop;
  std::optional<BuildProxy> proxy;  // build.proxy; none: libcurl's defaults (its environment)
};

// Downloads `url` to `dest` through `dest.partial`: an interrupted download (this attempt's or
// an earlier build's) resumes with a Range request instead of starting over; retries with
// backoff on network errors; verifies the SHA-256 before the file is renamed into place.
// Throws imgpipe::Error: failed when the bytes arrived but are not what the definition pinned,
// transient when the network gave up, stopped on a stop request.
void downloadFile(const std::string& url, const std::filesystem::path& dest,
                  const DownloadOptions& options);

// A small file (a repository key, a file for the image) into memory; at most `maxBytes`.
std::string downloadText(const std::string& url, const DownloadOptions& options,
                         std::uint64_t maxBytes = 64ull << 20);

}  // namespace imgpipe::build
