#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/http/http_client.h"
#include "agent-glance/secret.h"

namespace imgpipe::glance::keystone {

enum class AuthMethod { password, applicationCredential };

// Keystone v3 credentials and where to find the image API. Value type: it names where secrets
// come from, never the secrets themselves.
struct KeystoneOptions {
  std::string authUrl;  // ".../v3"
  AuthMethod method = AuthMethod::password;
  // The user: by id, or by name within a domain (name or id).
  std::string userId;
  std::string userName;
  std::string userDomainId;
  std::string userDomainName;
  SecretSource password;
  // Application credential: by id, or by name together with the user.
  std::string applicationCredentialId;
  std::string applicationCredentialName;
  SecretSource applicationCredentialSecret;
  // Project scope (password auth; an application credential carries its own): by id, or by name
  // within a domain. Images belong to a project, so an unscoped token cannot register them.
  std::string projectId;
  std::string projectName;
  std::string projectDomainId;
  std::string projectDomainName;
  // Image endpoint: explicit, or from the token's catalog.
  std::string endpointOverride;
  // A catalog's plain http:// image endpoint is refused unless the site allows it.
  bool allowInsecureHttp = false;
  std::string serviceType = "image";
  std::string interface = "public";
  std::string region;  // empty: any
  // Renew this long before expiry (capped at half the token's lifetime, so short-lived tokens
  // are still used for a while).
  std::chrono::milliseconds renewBefore{300'000};
};

// The body of POST /v3/auth/tokens.
nlohmann::json buildAuthRequest(const KeystoneOptions& options, const std::string& secret);

// The endpoint of `serviceType` with `interface` (and `region`, if set) in a v3 catalog. Throws
// Error listing what the catalog offers when there is no match.
std::string findEndpoint(const nlohmann::json& catalog, const std::string& serviceType,
                         const std::string& interface, const std::string& region);

// Keystone's timestamps: "2026-11-22T03:16:57.000000Z" (also without fraction or with +00:00).
std::chrono::system_clock::time_point parseTimestamp(const std::string& text);

struct Token {
  std::string value;  // the X-Subject-Token; secret
  std::chrono::system_clock::time_point issuedAt, expiresAt;
  std::chrono::steady_clock::time_point renewAt;  // local clock: immune to clock skew
  std::string projectId;
  std::string userId;
  nlohmann::json catalog;
};

// Parses a token response (status 201). `received` is when it arrived on our clock.
Token parseTokenResponse(const std::string& subjectToken, const std::string& body,
                         std::chrono::steady_clock::time_point received,
                         std::chrono::milliseconds renewBefore);

// Keystone v3 authentication shared by all tasks of an agent: one token at a time, fetched on
// first use, renewed before it expires and after Glance refuses it (401). Thread-safe.
class KeystoneAuth : public AuthProvider {
 public:
  KeystoneAuth(KeystoneOptions options, http::HttpOptions http);

  AuthHeaders headers(std::stop_token stop) override;
  bool invalidate(std::uint64_t generation) override;
  std::string imageEndpoint(std::stop_token stop) override;
  std::string projectId(std::stop_token stop) override;

  // Tokens issued so far, and tokens dropped because Glance refused them (401). Tests and
  // diagnostics tell proactive renewal from renewal after a refusal with them.
  std::uint64_t tokensIssued() const;
  std::uint64_t tokensRefused() const;

 private:
  // With mutex_ held: a token that is not due for renewal.
  const Token& currentToken(std::stop_token stop);
  Token issueToken(std::stop_token stop);

  const KeystoneOptions options_;
  mutable std::mutex mutex_;
  http::HttpClient http_;
  std::optional<Token> token_;
  std::uint64_t generation_ = 0;
  std::uint64_t issued_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace imgpipe::glance::keystone
