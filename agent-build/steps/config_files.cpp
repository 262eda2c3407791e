#include "agent-build/steps/config_files.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace imgpipe::build {
namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : " ") + s;
  return out;
}

std::string tomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

std::string renderDeb822(const std::vector<std::string>& types,
                         const std::vector<std::string>& uris,
                         const std::vector<std::string>& suites,
                         const std::vector<std::string>& components,
                         const std::vector<std::string>& architectures,
                         const std::string& signedBy) {
  std::string out = "# written by imgpipe\n";
  out += "Types: " + joined(types) + "\n";
  out += "URIs: " + joined(uris) + "\n";
  out += "Suites: " + joined(suites) + "\n";
  if (!components.empty()) out += "Components: " + joined(components) + "\n";
  if (!architectures.empty()) out += "Architectures: " + joined(architectures) + "\n";
  if (!signedBy.empty()) out += "Signed-By: " + signedBy + "\n";
  return out;
}

std::string renderAptSource(const definition::AptSource& s) {
  return renderDeb822(s.types, s.uris, s.suites, s.components, s.architectures, s.signedBy);
}

std::string aptSourcePath(const std::string& name) {
  return "/etc/apt/sources.list.d/" + name + ".sources";
}

std::string repositoryKeyPath(const definition::RepositorySpec& repo, const std::string& keyBytes) {
  bool armored = keyBytes.find("-----BEGIN PGP PUBLIC KEY BLOCK-----") != std::string::npos;
  return "/etc/apt/keyrings/" + repo.name + (armored ? ".asc" : ".gpg");
}

std::string renderRepositorySource(const definition::RepositorySpec& repo,
                                   const std::string& keyPath) {
  return renderDeb822(repo.types, repo.uris, repo.suites, repo.components, repo.architectures,
                      keyPath);
}

std::string renderAptProxy(const std::string& proxy) {
  return "// written by imgpipe\nAcquire::http::Proxy \"" + proxy +
         "\";\nAcquire::https::Proxy \"" + proxy + "\";\n";
}

std::string mergeDaemonJson(const std::optional<std::string>& existing,
                            const definition::DockerMirrors& mirrors) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (existing && !existing->empty()) {
    try {
      j = nlohmann::ordered_json::parse(*existing);
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string(kDockerDaemonJson) + " in the image is not valid JSON: " + e.what());
    }
    if (!j.is_object())
      throw Error(std::string(kDockerDaemonJson) + " in the image is not a JSON object");
  }
  if (!mirrors.registryMirrors.empty()) j["registry-mirrors"] = mirrors.registryMirrors;
  if (!mirrors.insecureRegistries.empty()) j["insecure-registries"] = mirrors.insecureRegistries;
  return j.dump(2) + "\n";
}

std::string hostsTomlPath(const definition::ContainerdMirrors& c,
                          const definition::ContainerdRegistry& r) {
  return c.configPath + "/" + r.host + "/hosts.toml";
}

std::string renderHostsToml(const definition::ContainerdRegistry& r) {
  std::string server = r.server;
  if (server.empty())
    server = r.host == "docker.io" ? "https://registry-1.docker.io" : "https://" + r.host;
  std::string out = "# written by imgpipe\nserver = " + tomlString(server) + "\n";
  for (const auto& m : r.mirrors) {
    out += "\n[host." + tomlString(m.url) + "]\n  capabilities = [";
    for (size_t i = 0; i < m.capabilities.size(); ++i)
      out += (i ? ", " : "") + tomlString(m.capabilities[i]);
    out += "]\n";
    if (m.skipVerify) out += "  skip_verify = true\n";
    if (m.overridePath) out += "  override_path = true\n";
  }
  return out;
}

std::string cloudInitDropInPath(const std::string& name) {
  return "/etc/cloud/cloud.cfg.d/" + name;
}

}  // namespace imgpipe::build
