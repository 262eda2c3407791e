#include "agent-glance/keystone/keystone_auth.h"

#include <time.h>

#include <cstdio>

#include "agent-glance/http/api_error.h"
#include "common/log.h"

namespace imgpipe::glance::keystone {
namespace {

using json = nlohmann::json;

json domainRef(const std::string& id, const std::string& name) {
  if (!id.empty()) return {{"id", id}};
  return {{"name", name.empty() ? std::string("Default") : name}};
}

json userRef(const KeystoneOptions& o) {
  if (!o.userId.empty()) return {{"id", o.userId}};
  return {{"name", o.userName}, {"domain", domainRef(o.userDomainId, o.userDomainName)}};
}

std::string stringAt(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

json buildAuthRequest(const KeystoneOptions& o, const std::string& secret) {
  json identity;
  if (o.method == AuthMethod::password) {
    json user = userRef(o);
    user["password"] = secret;
    identity = {{"methods", {"password"}}, {"password", {{"user", user}}}};
  } else {
    json cred;
    if (!o.applicationCredentialId.empty()) {
      cred = {{"id", o.applicationCredentialId}};
    } else {
      cred = {{"name", o.applicationCredentialName}, {"user", userRef(o)}};
    }
    cred["secret"] = secret;
    identity = {{"methods", {"application_credential"}}, {"application_credential", cred}};
  }
  json auth = {{"identity", identity}};
  // An application credential is bound to its project; Keystone refuses an explicit scope.
  if (o.method == AuthMethod::password) {
    json project;
    if (!o.projectId.empty()) {
      project = {{"id", o.projectId}};
    } else {
      project = {{"name", o.projectName},
                 {"domain", domainRef(o.projectDomainId, o.projectDomainName)}};
    }
    auth["scope"] = {{"project", project}};
  }
  return {{"auth", auth}};
}

std::string findEndpoint(const json& catalog, const std::string& serviceType,
                         const std::string& interface, const std::string& region) {
  std::string offered;
  if (catalog.is_array()) {
    for (const auto& service : catalog) {
      if (stringAt(service, "type") != serviceType) continue;
      auto eps = service.find("endpoints");
      if (eps == service.end() || !eps->is_array()) continue;
      for (const auto& ep : *eps) {
        const std::string iface = stringAt(ep, "interface");
        std::string epRegion = stringAt(ep, "region_id");
        if (epRegion.empty()) epRegion = stringAt(ep, "region");
        offered += (offered.empty() ? "" : ", ") + iface + "@" +
                   (epRegion.empty() ? std::string("(no region)") : epRegion);
        if (iface == interface && (region.empty() || epRegion == region))
          return stringAt(ep, "url");
      }
    }
  }
  throw Error("the Keystone catalog has no '" + serviceType + "' endpoint with interface '" +
              interface + "'" + (region.empty() ? "" : " in region '" + region + "'") +
              (offered.empty() ? std::string(" (it lists no such service at all)")
                               : " (it offers: " + offered + ")") +
              "; set glance.keystone.interface/region or glance.endpoint");
}

std::chrono::system_clock::time_point parseTimestamp(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    throw Error("cannot parse Keystone timestamp '" + text + "'");
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::string_view rest(text.c_str() + consumed);
  std::chrono::microseconds fraction{0};
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    long long digits = 0;
    int n = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (n < 6) {
        digits = digits * 10 + (rest.front() - '0');
        ++n;
      }
      rest.remove_prefix(1);
    }
    while (n++ < 6)
      digits *= 10;
    fraction = std::chrono::microseconds(digits);
  }
  if (!(rest.empty() || rest == "Z" || rest == "+00:00" || rest == "+0000"))
    throw Error("unexpected time zone in Keystone timestamp '" + text + "'");
  const time_t seconds = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(seconds) + fraction;
}

Token parseTokenResponse(const std::string& subjectToken, const std::string& body,
                         std::chrono::steady_clock::time_point received,
                         std::chrono::milliseconds renewBefore) {
  if (subjectToken.empty()) throw Error("Keystone answered without an X-Subject-Token header");
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("token") || !j["token"].is_object())
    throw Error("Keystone's token response is not the expected JSON document");
  const json& t = j["token"];
  Token token;
  token.value = subjectToken;
  token.expiresAt = parseTimestamp(stringAt(t, "expires_at"));
  const std::string issued = stringAt(t, "issued_at");
  token.issuedAt = issued.empty() ? std::chrono::system_clock::now() : parseTimestamp(issued);
  if (auto p = t.find("project"); p != t.end() && p->is_object())
    token.projectId = stringAt(*p, "id");
  if (auto u = t.find("user"); u != t.end() && u->is_object()) token.userId = stringAt(*u, "id");
  if (auto c = t.find("catalog"); c != t.end()) token.catalog = *c;
  // The lifetime is measured on Keystone's clock and applied to ours, so a skewed local clock
  // neither renews constantly nor too late.
  auto lifetime =
      std::chrono::duration_cast<std::chrono::milliseconds>(token.expiresAt - token.issuedAt);
  if (lifetime.count() < 0) lifetime = std::chrono::milliseconds(0);
  auto margin = std::min(renewBefore, lifetime / 2);
  token.renewAt = received + (lifetime - margin);
  return token;
}

KeystoneAuth::KeystoneAuth(KeystoneOptions options, http::HttpOptions http)
    : options_(std::move(options)), http_(std::move(http)) {}

AuthHeaders KeystoneAuth::headers(std::stop_token stop) {
  std::lock_guard lock(mutex_);
  const Token& t = currentToken(stop);
  return {{{"X-Auth-Token", t.value}}, generation_};
}

bool KeystoneAuth::invalidate(std::uint64_t generation) {
  std::lock_guard lock(mutex_);
  // Another task may have renewed already; only the refused token is dropped.
  if (generation == generation_ && token_) {
    log::named("keystone")->info("Glance refused the token; fetching a new one");
    token_.reset();
    ++refused_;
  }
  return true;
}

std::string KeystoneAuth::imageEndpoint(std::stop_token stop) {
  if (!options_.endpointOverride.empty()) return normalizeImageEndpoint(options_.endpointOverride);
  std::lock_guard lock(mutex_);
  const Token& t = currentToken(stop);
  auto url = normalizeImageEndpoint(
      findEndpoint(t.catalog, options_.serviceType, options_.interface, options_.region));
  if (url.starts_with("http://") && !options_.allowInsecureHttp)
    throw Error("the Keystone catalog's image endpoint " + url +
                " is plain http: the token would cross the network unencrypted; set "
                "glance.endpoint to an https:// URL, or glance.allow_insecure_http: true");
  return url;
}

std::string KeystoneAuth::projectId(std::stop_token stop) {
  std::lock_guard lock(mutex_);
  return currentToken(stop).projectId;
}

std::uint64_t KeystoneAuth::tokensIssued() const {
  std::lock_guard lock(mutex_);
  return issued_;
}

std::uint64_t KeystoneAuth::tokensRefused() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

const Token& KeystoneAuth::currentToken(std::stop_token stop) {
  if (!token_ || std::chrono::steady_clock::now() >= token_->renewAt) {
    token_ = issueToken(stop);
    ++generation_;
    ++issued_;
  }
  return *token_;
}

Token KeystoneAuth::issueToken(std::stop_token stop) {
  const std::string secret = options_.method == AuthMethod::password
                                 ? options_.password.read()
                                 : options_.applicationCredentialSecret.read();
  http::Request req;
  req.method = "POST";
  // The catalog is only needed to find the image endpoint.
  req.url = http::joinUrl(options_.authUrl, "auth/tokens");
  if (!options_.endpointOverride.empty()) req.url += "?nocatalog";
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  req.body = buildAuthRequest(options_, secret).dump();
  req.stop = stop;
  http::Response resp = http_.perform(req);
  if (resp.status != 201 && resp.status != 200) {
    // The URL is shown without the query; the body we sent (with the secret) never is.
    throw http::ApiError("Keystone", "POST", http::joinUrl(options_.authUrl, "auth/tokens"),
                         resp.status, http::extractServiceMessage(resp.body));
  }
  Token token = parseTokenResponse(resp.header("X-Subject-Token").value_or(""), resp.body,
                                   std::chrono::steady_clock::now(), options_.renewBefore);
  auto lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(token.expiresAt - token.issuedAt).count();
  log::named("keystone")
      ->info("new token for project {} (valid {} s, renewal in {} s)", token.projectId, lifetime,
             std::chrono::duration_cast<std::chrono::seconds>(token.renewAt -
                                                              std::chrono::steady_clock::now())
                 .count());
  return token;
}

}  // namespace imgpipe::glance::keystone
