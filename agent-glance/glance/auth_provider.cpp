#include "agent-glance/glance/auth_provider.h"

#include <regex>

namespace imgpipe::glance {

StaticAuth::StaticAuth(std::string endpoint, std::optional<TrustedHeaders> trusted)
    : endpoint_(normalizeImageEndpoint(std::move(endpoint))), trusted_(std::move(trusted)) {}

AuthHeaders StaticAuth::headers(std::stop_token) {
  AuthHeaders out;
  if (!trusted_) return out;
  std::string roles;
  for (const auto& r : trusted_->roles)
    roles += (roles.empty() ? "" : ",") + r;
  out.headers.push_back({"X-Identity-Status", "Confirmed"});
  out.headers.push_back({"X-Roles", roles});
  out.headers.push_back({"X-Project-Id", trusted_->projectId});
  if (!trusted_->userId.empty()) out.headers.push_back({"X-User-Id", trusted_->userId});
  return out;
}

std::string StaticAuth::projectId(std::stop_token) {
  return trusted_ ? trusted_->projectId : std::string();
}

std::string normalizeImageEndpoint(std::string url) {
  static const std::regex versionSuffix(R"((/v2(\.[0-9]+)?)?/*$)");
  return std::regex_replace(url, versionSuffix, "");
}

}  // namespace imgpipe::glance
