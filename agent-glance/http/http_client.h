#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "agent-glance/http/curl_handle.h"
#include "common/error.h"

namespace imgpipe::glance::http {

struct Header {
  std::string name;
  std::string value;
};

// How every request of one client behaves. Value type.
struct HttpOptions {
  std::filesystem::path caBundle;  // empty: the system's CAs
  std::chrono::milliseconds connectTimeout{10'000};
  // Whole-request limit for requests without a file body (API calls, token requests).
  std::chrono::milliseconds requestTimeout{60'000};
  // A file transfer moving no bytes for this long is abandoned (there is no total limit: a
  // multi-GB upload over a slow link may legitimately take hours).
  std::chrono::milliseconds stallTimeout{120'000};
  std::uint64_t uploadRateLimit = 0;  // bytes/s, 0 = unlimited
  std::string userAgent = "imgpipe-agent-glance/" IMGPIPE_VERSION;
};

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<Header> headers;  // never logged: they carry tokens
  std::string body;             // sent unless uploadFile is set
  // Streamed from disk (PUT), never read into memory.
  std::filesystem::path uploadFile;
  // Called from the transfer loop with bytes sent so far and the file size.
  std::function<void(std::uint64_t sent, std::uint64_t total)> onUploadProgress;
  // Sees every byte of the file as it is handed to the connection (to hash what was sent). An
  // empty span means the body starts (again) from its first byte.
  std::function<void(std::span<const std::byte>)> onUploadData;
  std::stop_token stop;
};

struct Response {
  long status = 0;
  std::vector<Header> headers;
  std::string body;

  // Case-insensitive lookup of a response header.
  std::optional<std::string> header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300; }
};

// A blocking HTTP client over one libcurl easy handle. Resource type; not thread-safe (one per
// task). HTTP status codes are returned, not thrown: only transport failures throw.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  HttpClient(HttpClient&&) noexcept = default;
  HttpClient& operator=(HttpClient&&) noexcept = default;

  Response perform(const Request& request);
  const HttpOptions& options() const { return options_; }

 private:
  HttpOptions options_;
  CurlEasy easy_;
};

// "https://host:5000/v3/" + "auth/tokens" with exactly one slash between them.
std::string joinUrl(std::string_view base, std::string_view path);
// Percent-encodes a query or path component.
std::string urlEncode(std::string_view text);

}  // namespace imgpipe::glance::http
