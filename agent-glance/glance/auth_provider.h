#pragma once

#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent-glance/http/http_client.h"

namespace imgpipe::glance {

// Headers that authenticate one request, and which credential they came from, so a 401 can
// invalidate exactly that credential (and not a fresher one another task already fetched).
struct AuthHeaders {
  std::vector<http::Header> headers;
  std::uint64_t generation = 0;
};

// How the Glance client authenticates and where it finds the image API. Implementations are
// shared by all tasks of an agent and are thread-safe.
class AuthProvider {
 public:
  virtual ~AuthProvider() = default;
  // May contact Keystone (first use, renewal before expiry); throws ApiError, or Error
  // (transient) when Keystone does not answer.
  virtual AuthHeaders headers(std::stop_token stop) = 0;
  // Glance answered 401 to a request made with `generation`. Returns true when asking headers()
  // again may yield a credential Glance accepts (a new token), false when it cannot.
  virtual bool invalidate(std::uint64_t generation) = 0;
  // Base URL of the image API, without the /v2 suffix ("https://glance.site1:9292").
  virtual std::string imageEndpoint(std::stop_token stop) = 0;
  // The project that will own the images we create ("" when unknown).
  virtual std::string projectId(std::stop_token stop) = 0;
};

// No Keystone: a fixed endpoint and fixed headers. With `trusted` set, the headers a Keystone
// auth_token filter would have added (X-Identity-Status, X-Roles, X-Project-Id, X-User-Id),
// for Glance deployments that run behind an authenticating proxy (and for tests); with nothing
// set, plain unauthenticated requests.
struct TrustedHeaders {
  std::string projectId;  // 32 hex characters in Keystone's format
  std::string userId;
  std::vector<std::string> roles{"member", "reader"};
};

class StaticAuth : public AuthProvider {
 public:
  StaticAuth(std::string endpoint, std::optional<TrustedHeaders> trusted);
  AuthHeaders headers(std::stop_token) override;
  bool invalidate(std::uint64_t) override { return false; }
  std::string imageEndpoint(std::stop_token) override { return endpoint_; }
  std::string projectId(std::stop_token) override;

 private:
  std::string endpoint_;
  std::optional<TrustedHeaders> trusted_;
};

// Strips a trailing "/" and a version suffix ("/v2", "/v2.16/") from an image endpoint found in
// a catalog or a config, so that "/v2/images" can be appended.
std::string normalizeImageEndpoint(std::string url);

}  // namespace imgpipe::glance
