// Step 5a: mirrors for air-gapped sites — apt sources in DEB822 form (the legacy sources.list
// removed), an apt proxy, docker's registry-mirrors, containerd's certs.d hosts.toml files.
// Runs before packages, so the build itself already uses the site's mirrors.
#include "agent-build/steps/config_files.h"
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class MirrorsStep : public Step {
 public:
  std::string_view name() const override { return "mirrors"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.mirrors.empty() ? "no mirrors defined" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& img = ctx.session().fs();
    const auto& m = ctx.def.mirrors;
    std::vector<std::string> done;
    if (m.apt) {
      for (const auto& s : m.apt->sources) {
        img.writeFile(aptSourcePath(s.name), renderAptSource(s));
        ctx.log.detail("wrote " + aptSourcePath(s.name));
      }
      if (m.apt->removeLegacySourcesList && img.remove("/etc/apt/sources.list"))
        ctx.log.info("removed the legacy /etc/apt/sources.list");
      if (!m.apt->proxy.empty()) img.writeFile(kAptProxyPath, renderAptProxy(m.apt->proxy));
      done.push_back("apt: " + std::to_string(m.apt->sources.size()) + " sources");
    }
    if (m.docker) {
      img.writeFile(kDockerDaemonJson, mergeDaemonJson(img.readFile(kDockerDaemonJson), *m.docker));
      done.push_back("docker: " + std::to_string(m.docker->registryMirrors.size()) +
                     " registry mirrors");
    }
    if (m.containerd) {
      for (const auto& r : m.containerd->registries)
        img.writeFile(hostsTomlPath(*m.containerd, r), renderHostsToml(r));
      done.push_back("containerd: " + std::to_string(m.containerd->registries.size()) +
                     " registries");
    }
    std::string out;
    for (const auto& d : done)
      out += (out.empty() ? "" : "; ") + d;
    return out;
  }
};

}  // namespace

std::unique_ptr<Step> makeMirrorsStep() {
  return std::make_unique<MirrorsStep>();
}

}  // namespace imgpipe::build
