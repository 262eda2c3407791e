#include "agent-glance/glance_config.h"

#include <sys/stat.h>

#include <regex>

#include "common/units.h"

namespace imgpipe::glance {
namespace {

// Secrets come from a file or an environment variable, never from the config itself: the config
// is shown, copied and committed far more freely than a secret should be.
SecretSource readSecretSource(const YamlReader& section, const std::string& stem) {
  if (section.has(stem))
    section.at(stem).fail("inline secrets are not accepted; put it in a file (" + stem +
                          "_file) or an environment variable (" + stem + "_env)");
  SecretSource s;
  s.file = section.get<std::string>(stem + "_file", "");
  s.env = section.get<std::string>(stem + "_env", "");
  if (!s.file.empty() && !s.env.empty())
    section.at(stem + "_env").fail("set either " + stem + "_file or " + stem + "_env, not both");
  if (!s.file.empty()) {
    struct stat st {};
    if (::stat(s.file.c_str(), &st) != 0)
      section.at(stem + "_file").fail("cannot read " + s.file.string());
    if ((st.st_mode & 077) != 0)
      section.at(stem + "_file")
          .fail(s.file.string() + " is accessible by its group or others; chmod 600 " +
                s.file.string());
  }
  s.takeFromEnvironment();
  return s;
}

// Tokens and passwords cross these URLs: plain http only where the site says so.
void checkUrl(const YamlReader& section, const char* key, const std::string& url,
              bool allowInsecureHttp) {
  static const std::regex httpUrl(R"(^https?://[^/\s]+(/\S*)?$)");
  if (!std::regex_match(url, httpUrl))
    section.at(key).fail("expected an http:// or https:// URL, got '" + url + "'");
  if (url.starts_with("http://") && !allowInsecureHttp)
    section.at(key).fail("'" + url +
                         "' is plain http: tokens and passwords would cross the network "
                         "unencrypted; use https://, or set glance.allow_insecure_http: true "
                         "for a site where that is acceptable (a loopback or a test Glance)");
}

keystone::KeystoneOptions parseKeystone(const YamlReader& k, bool allowInsecureHttp) {
  keystone::KeystoneOptions o;
  o.authUrl = k.get<std::string>("auth_url", "");
  if (o.authUrl.empty()) k.fail("missing required field 'auth_url' (with auth: keystone)");
  checkUrl(k, "auth_url", o.authUrl, allowInsecureHttp);
  // "https://keystone:5000" and "https://cloud/identity" mean their v3 API.
  while (!o.authUrl.empty() && o.authUrl.back() == '/')
    o.authUrl.pop_back();
  if (!o.authUrl.ends_with("/v3")) o.authUrl += "/v3";
  const auto method = k.get<std::string>("method", "password");
  if (method == "password")
    o.method = keystone::AuthMethod::password;
  else if (method == "application_credential")
    o.method = keystone::AuthMethod::applicationCredential;
  else
    k.at("method").fail("expected password or application_credential, got '" + method + "'");

  o.userName = k.get<std::string>("username", "");
  o.userId = k.get<std::string>("user_id", "");
  o.userDomainName = k.get<std::string>("user_domain_name", "");
  o.userDomainId = k.get<std::string>("user_domain_id", "");
  o.password = readSecretSource(k, "password");
  o.applicationCredentialId = k.get<std::string>("application_credential_id", "");
  o.applicationCredentialName = k.get<std::string>("application_credential_name", "");
  o.applicationCredentialSecret = readSecretSource(k, "application_credential_secret");
  o.projectName = k.get<std::string>("project_name", "");
  o.projectId = k.get<std::string>("project_id", "");
  o.projectDomainName = k.get<std::string>("project_domain_name", "");
  o.projectDomainId = k.get<std::string>("project_domain_id", "");
  o.interface = k.get<std::string>("interface", "public");
  if (o.interface != "public" && o.interface != "internal" && o.interface != "admin")
    k.at("interface").fail("expected public, internal or admin, got '" + o.interface + "'");
  o.region = k.get<std::string>("region", "");
  o.serviceType = k.get<std::string>("service_type", "image");
  if (k.has("renew_before")) o.renewBefore = k.at("renew_before").asDuration();

  if (o.method == keystone::AuthMethod::password) {
    if (o.userId.empty() && o.userName.empty())
      k.fail("password auth needs 'username' (with its domain) or 'user_id'");
    if (o.password.empty()) k.fail("password auth needs 'password_file' or 'password_env'");
    if (o.projectId.empty() && o.projectName.empty())
      k.fail(
          "password auth needs a project to own the images: 'project_name' (with its domain) "
          "or 'project_id'");
  } else {
    if (o.applicationCredentialId.empty() &&
        (o.applicationCredentialName.empty() || (o.userId.empty() && o.userName.empty())))
      k.fail(
          "application_credential auth needs 'application_credential_id', or "
          "'application_credential_name' with 'username' or 'user_id'");
    if (o.applicationCredentialSecret.empty())
      k.fail(
          "application_credential auth needs 'application_credential_secret_file' or "
          "'application_credential_secret_env'");
    if (!o.projectId.empty() || !o.projectName.empty())
      k.fail("an application credential is bound to its project; remove project_name/project_id");
  }
  k.rejectUnknownKeys();
  return o;
}

}  // namespace

GlanceConfig parseGlanceConfig(const YamlReader& g) {
  GlanceConfig c;
  if (!g.isNull() && !g.isMap()) g.fail("expected a mapping");
  const auto auth = g.get<std::string>("auth", "keystone");
  if (auth == "keystone")
    c.auth = AuthMode::keystone;
  else if (auth == "trusted-headers")
    c.auth = AuthMode::trustedHeaders;
  else if (auth == "none")
    c.auth = AuthMode::none;
  else
    g.at("auth").fail("expected keystone, trusted-headers or none, got '" + auth + "'");

  c.allowInsecureHttp = g.get<bool>("allow_insecure_http", false);
  c.endpoint = g.get<std::string>("endpoint", "");
  if (!c.endpoint.empty()) checkUrl(g, "endpoint", c.endpoint, c.allowInsecureHttp);
  if (c.auth != AuthMode::keystone && c.endpoint.empty())
    g.fail("missing required field 'endpoint' (with auth: " + auth + ")");

  if (c.auth == AuthMode::keystone) {
    c.keystone = parseKeystone(g.require("keystone"), c.allowInsecureHttp);
    c.keystone.endpointOverride = c.endpoint;
    c.keystone.allowInsecureHttp = c.allowInsecureHttp;
  } else if (g.has("keystone")) {
    g.at("keystone").fail("only used with auth: keystone");
  }
  if (c.auth == AuthMode::trustedHeaders) {
    auto t = g.require("trusted_headers");
    c.trustedHeaders.projectId = t.required<std::string>("project_id");
    c.trustedHeaders.userId = t.get<std::string>("user_id", "");
    if (t.has("roles")) c.trustedHeaders.roles = t.at("roles").asStringList();
    t.rejectUnknownKeys();
  } else if (g.has("trusted_headers")) {
    g.at("trusted_headers").fail("only used with auth: trusted-headers");
  }

  c.http.caBundle = g.get<std::string>("ca_bundle", "");
  if (!c.http.caBundle.empty() && !std::filesystem::is_regular_file(c.http.caBundle))
    g.at("ca_bundle").fail("no such file: " + c.http.caBundle.string());
  if (auto t = g.at("timeouts"); !t.isNull()) {
    if (t.has("connect")) c.http.connectTimeout = t.at("connect").asDuration();
    if (t.has("request")) c.http.requestTimeout = t.at("request").asDuration();
    if (t.has("stall")) c.http.stallTimeout = t.at("stall").asDuration();
    t.rejectUnknownKeys();
  }
  const auto method = g.get<std::string>("upload_method", "put");
  if (method == "put")
    c.uploadMethod = UploadMethod::put;
  else if (method == "import")
    c.uploadMethod = UploadMethod::import;
  else
    g.at("upload_method").fail("expected put or import, got '" + method + "'");
  if (g.has("upload_rate_limit")) c.http.uploadRateLimit = g.at("upload_rate_limit").asRate();
  if (g.has("max_virtual_size")) c.maxVirtualSize = g.at("max_virtual_size").asSize();
  if (auto ov = g.optional<std::string>("older_versions")) {
    auto parsed = definition::parseOlderVersions(*ov);
    if (!parsed) g.at("older_versions").fail("expected keep, hide or rename, got '" + *ov + "'");
    c.olderVersions = *parsed;
  }
  if (auto r = g.at("retry"); !r.isNull()) {
    if (r.has("initial")) c.retry.initial = r.at("initial").asDuration();
    if (r.has("max")) c.retry.max = r.at("max").asDuration();
    if (r.has("give_up_after")) c.retry.giveUpAfter = r.at("give_up_after").asDuration();
    c.retry.maxAttempts = r.get<unsigned>("max_attempts", 0);
    if (c.retry.initial.count() <= 0) r.at("initial").fail("must be more than 0");
    if (c.retry.max < c.retry.initial) r.at("max").fail("must not be less than retry.initial");
    r.rejectUnknownKeys();
  }
  if (g.has("saving_grace")) c.savingGrace = g.at("saving_grace").asDuration();
  if (g.has("import_timeout")) c.importTimeout = g.at("import_timeout").asDuration();
  if (g.has("qemu_img_timeout")) c.qemuImgTimeout = g.at("qemu_img_timeout").asDuration();
  g.rejectUnknownKeys();
  return c;
}

std::string describe(const GlanceConfig& c) {
  std::string out;
  switch (c.auth) {
    case AuthMode::keystone: {
      const auto& k = c.keystone;
      out = "auth keystone " + k.authUrl + " as ";
      if (k.method == keystone::AuthMethod::password) {
        out += "user " + (k.userId.empty() ? k.userName : k.userId) + ", project " +
               (k.projectId.empty() ? k.projectName : k.projectId) + ", password from " +
               k.password.describe();
      } else {
        out += "application credential " +
               (k.applicationCredentialId.empty() ? k.applicationCredentialName
                                                  : k.applicationCredentialId) +
               ", secret from " + k.applicationCredentialSecret.describe();
      }
      out += "; image endpoint " + (c.endpoint.empty()
                                        ? "from the catalog (" + k.interface +
                                              (k.region.empty() ? "" : ", " + k.region) + ")"
                                        : c.endpoint);
      break;
    }
    case AuthMode::trustedHeaders:
      out = "auth trusted-headers (project " + c.trustedHeaders.projectId + "); endpoint " +
            c.endpoint;
      break;
    case AuthMode::none:
      out = "auth none; endpoint " + c.endpoint;
      break;
  }
  out += "; upload " + std::string(c.uploadMethod == UploadMethod::put ? "put" : "import");
  if (c.http.uploadRateLimit > 0) out += " at most " + formatBytes(c.http.uploadRateLimit) + "/s";
  out += "; older versions: " + std::string(toString(c.olderVersions));
  return out;
}

std::shared_ptr<AuthProvider> makeAuthProvider(const GlanceConfig& c) {
  switch (c.auth) {
    case AuthMode::keystone:
      return std::make_shared<keystone::KeystoneAuth>(c.keystone, c.http);
    case AuthMode::trustedHeaders:
      return std::make_shared<StaticAuth>(c.endpoint, c.trustedHeaders);
    case AuthMode::none:
      return std::make_shared<StaticAuth>(c.endpoint, std::nullopt);
  }
  return nullptr;
}

}  // namespace imgpipe::glance
