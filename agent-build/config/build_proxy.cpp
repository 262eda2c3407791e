#include "agent-build/config/build_proxy.h"

#include <charconv>
#include <optional>

#include "common/error.h"

namespace imgpipe::build {

ProxyEndpoint parseProxyUrl(const std::string& url, const std::string& what) {
  constexpr std::string_view scheme = "http://";
  auto fail = [&](const std::string& why) -> ProxyEndpoint {
    throw Error(what + ": '" + url + "' " + why + " (want http://host:port)");
  };
  if (url.rfind(scheme, 0) != 0) return fail("is not an http:// proxy URL");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/@?# ") != std::string::npos)
    return fail("has a path, credentials or spaces");
  ProxyEndpoint e;
  std::string host = rest;
  std::optional<std::string> port;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    const auto close = rest.find(']');
    if (close == std::string::npos) return fail("has an unclosed [");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return fail("has text after ]");
      port = rest.substr(close + 2);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
    if (port->empty() || ec != std::errc() || end != port->data() + port->size() || value == 0 ||
        value > 65535)
      return fail("has no valid port");
    e.port = static_cast<std::uint16_t>(value);
  }
  if (host.empty() || (host.find(':') != std::string::npos && rest.front() != '['))
    return fail("has no host");
  e.host = host;
  return e;
}

BuildProxy parseBuildProxy(const YamlReader& section) {
  BuildProxy p;
  p.http = section.get<std::string>("http", "");
  if (p.http.empty()) section.fail("proxy: needs http: (http://host:port)");
  try {
    (void)parseProxyUrl(p.http, "build.proxy.http");
  } catch (const Error& e) {
    section.at("http").fail(e.what());
  }
  p.https = section.get<std::string>("https", "");
  if (!p.https.empty()) {
    try {
      (void)parseProxyUrl(p.https, "build.proxy.https");
    } catch (const Error& e) {
      section.at("https").fail(e.what());
    }
  }
  p.noProxy = section.get<std::string>("no_proxy", "");
  section.rejectUnknownKeys();
  return p;
}

std::map<std::string, std::string> proxyEnvironment(const BuildProxy& proxy) {
  std::map<std::string, std::string> env = {{"http_proxy", proxy.http},
                                            {"HTTP_PROXY", proxy.http},
                                            {"https_proxy", proxy.httpsOrHttp()},
                                            {"HTTPS_PROXY", proxy.httpsOrHttp()}};
  if (!proxy.noProxy.empty()) {
    env["no_proxy"] = proxy.noProxy;
    env["NO_PROXY"] = proxy.noProxy;
  }
  return env;
}

}  // namespace imgpipe::build
