#pragma once

// The build agent's HTTP proxy (`build.proxy`): how everything a build fetches leaves the host
// when the site allows the network only through a proxy — base downloads, debootstrap, apt in
// the image, repository keys, url: files and the definition's scripts. Never written into the
// image: it reaches commands through their environment only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/yaml_reader.h"

namespace imgpipe::build {

// Value type.
struct BuildProxy {
  std::string http;     // "http://host:port"
  std::string https;    // the proxy for https:// URLs (CONNECT); empty: `http`
  std::string noProxy;  // comma-separated hosts and domains reached directly

  const std::string& httpsOrHttp() const { return https.empty() ? http : https; }
};

// `proxy: {http: URL, https: URL, no_proxy: "a,b"}`; throws naming the key for a URL that is
// not http://host:port.
BuildProxy parseBuildProxy(const YamlReader& section);

// An http://host[:port][/] proxy URL, split. Throws Error naming `what` otherwise.
struct ProxyEndpoint {
  std::string host;
  std::uint16_t port = 3128;
};
ProxyEndpoint parseProxyUrl(const std::string& url, const std::string& what);

// http_proxy, https_proxy, no_proxy (both cases, as curl, apt, wget and pip read them).
std::map<std::string, std::string> proxyEnvironment(const BuildProxy& proxy);

}  // namespace imgpipe::build
