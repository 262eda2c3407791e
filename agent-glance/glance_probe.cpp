#include "agent-glance/glance_probe.h"

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/glance/glance_client.h"
#include "common/probe_findings.h"

namespace imgpipe::glance {

std::string probeGlance(const GlanceConfig& config) {
  std::stop_source never;
  auto auth = makeAuthProvider(config);
  // Separately first: a wrong password or an unreachable Keystone is then reported as such,
  // not as a Glance failure.
  (void)auth->headers(never.get_token());
  http::HttpClient http(config.http);
  GlanceClient glance(http, *auth, never.get_token());
  const auto methods = glance.importMethods();
  std::string out = "Glance at " + glance.endpoint() + " answers";
  if (auto project = auth->projectId(never.get_token()); !project.empty())
    out += " as project " + project;
  out += "; import methods: ";
  for (size_t i = 0; i < methods.size(); ++i)
    out += (i ? ", " : "") + methods[i];
  if (methods.empty()) out += "none";
  if (config.allowInsecureHttp &&
      (glance.endpoint().starts_with("http://") || config.keystone.authUrl.starts_with("http://")))
    out += "; " + std::string(kInsecureHttpWarning);
  return out;
}

}  // namespace imgpipe::glance
