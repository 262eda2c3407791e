#pragma once

#include <optional>
#include <string>
#include <vector>

#include "definition/image_definition.h"

namespace imgpipe::build {

// The configuration files a definition turns into, rendered in one place so that the steps that
// write them and the validation that checks them agree byte for byte.

// /etc/apt/sources.list.d/<name>.sources (DEB822).
std::string renderDeb822(const std::vector<std::string>& types,
                         const std::vector<std::string>& uris,
                         const std::vector<std::string>& suites,
                         const std::vector<std::string>& components,
                         const std::vector<std::string>& architectures,
                         const std::string& signedBy);
std::string renderAptSource(const definition::AptSource& s);
std::string aptSourcePath(const std::string& name);

// A repository's key file (armored keys as .asc, binary ones as .gpg) and its source.
std::string repositoryKeyPath(const definition::RepositorySpec& repo, const std::string& keyBytes);
std::string renderRepositorySource(const definition::RepositorySpec& repo,
                                   const std::string& keyPath);

inline constexpr const char* kAptProxyPath = "/etc/apt/apt.conf.d/90imgpipe-proxy";
std::string renderAptProxy(const std::string& proxy);

inline constexpr const char* kDockerDaemonJson = "/etc/docker/daemon.json";
// The image's daemon.json (if any) with registry-mirrors / insecure-registries set; other keys
// are kept. Throws Error when the existing file is not a JSON object.
std::string mergeDaemonJson(const std::optional<std::string>& existing,
                            const definition::DockerMirrors& mirrors);

std::string hostsTomlPath(const definition::ContainerdMirrors& c,
                          const definition::ContainerdRegistry& r);
std::string renderHostsToml(const definition::ContainerdRegistry& r);

inline constexpr const char* kCloudInitUserFile =
    "/etc/cloud/cloud.cfg.d/90-imgpipe-default-user.cfg";
inline constexpr const char* kCloudInitDatasourceFile =
    "/etc/cloud/cloud.cfg.d/90-imgpipe-datasources.cfg";
std::string cloudInitDropInPath(const std::string& name);

}  // namespace imgpipe::build
