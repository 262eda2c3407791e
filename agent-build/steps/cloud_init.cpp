// Step 5f: cloud-init drop-ins. The default user does not exist in a cloud image until first
// boot, so its groups are set in cloud-init's configuration (system_info.default_user), never
// with usermod.
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "agent-build/steps/config_files.h"
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

// default_user.groups as the image's cloud-init would see it before our drop-in: cloud.cfg,
// then the drop-ins that sort before ours (later files override earlier ones).
std::vector<std::string> imageDefaultGroups(const ImageFs& img) {
  std::vector<std::string> files = {"/etc/cloud/cloud.cfg"};
  const std::string ours = std::filesystem::path(kCloudInitUserFile).filename().string();
  for (const auto& name : img.list("/etc/cloud/cloud.cfg.d"))
    if (name.ends_with(".cfg") && name < ours) files.push_back("/etc/cloud/cloud.cfg.d/" + name);
  std::vector<std::string> groups;
  for (const auto& f : files) {
    auto text = img.readFile(f);
    if (!text) continue;
    try {
      auto y = YAML::Load(*text);
      auto g = y["system_info"]["default_user"]["groups"];
      if (!g) continue;
      groups.clear();
      if (g.IsSequence()) {
        for (const auto& e : g)
          groups.push_back(e.as<std::string>());
      } else if (g.IsScalar()) {  // "adm, sudo" is accepted by cloud-init too
        std::string s = g.as<std::string>();
        size_t start = 0;
        while (start <= s.size()) {
          auto comma = s.find(',', start);
          auto item =
              s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          item.erase(0, item.find_first_not_of(' '));
          item.erase(item.find_last_not_of(' ') + 1);
          if (!item.empty()) groups.push_back(item);
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
    } catch (const YAML::Exception&) {
      // A file cloud-init itself cannot parse contributes nothing; not ours to fix.
    }
  }
  return groups;
}

class CloudInitStep : public Step {
 public:
  std::string_view name() const override { return "cloud_init"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.cloudInit.empty() ? "no cloud-init configuration" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& img = ctx.session().fs();
    const auto& c = ctx.def.cloudInit;
    if (!img.exists("/etc/cloud/cloud.cfg"))
      throw Error(
          "cloud_init is configured but cloud-init is not installed in the image (no "
          "/etc/cloud/cloud.cfg); "
          "add cloud-init to packages.install");
    std::vector<std::string> done;
    const bool user = !c.defaultUserName.empty() || c.defaultUserGroups || !c.addGroups.empty() ||
                      !c.defaultUserShell.empty() || !c.defaultUserSudo.empty();
    if (user) {
      YAML::Emitter out;
      out << YAML::BeginMap << YAML::Key << "system_info" << YAML::Value << YAML::BeginMap
          << YAML::Key << "default_user" << YAML::Value << YAML::BeginMap;
      if (!c.defaultUserName.empty())
        out << YAML::Key << "name" << YAML::Value << c.defaultUserName;
      std::vector<std::string> groups;
      if (c.defaultUserGroups) groups = *c.defaultUserGroups;
      if (!c.addGroups.empty()) {
        groups = imageDefaultGroups(img);
        if (groups.empty())
          ctx.log.warn(
              "the image's cloud-init names no default_user groups; using add_groups alone");
        for (const auto& g : c.addGroups)
          if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
      }
      if (c.defaultUserGroups || !c.addGroups.empty())
        out << YAML::Key << "groups" << YAML::Value << YAML::Flow << groups;
      if (!c.defaultUserShell.empty())
        out << YAML::Key << "shell" << YAML::Value << c.defaultUserShell;
      if (!c.defaultUserSudo.empty())
        out << YAML::Key << "sudo" << YAML::Value << c.defaultUserSudo;
      out << YAML::EndMap << YAML::EndMap << YAML::EndMap;
      img.writeFile(kCloudInitUserFile, std::string("# written by imgpipe\n") + out.c_str() + "\n");
      std::string g;
      for (const auto& x : groups)
        g += (g.empty() ? "" : ",") + x;
      done.push_back("default user" + (groups.empty() ? std::string() : " groups " + g));
    }
    if (!c.datasources.empty()) {
      YAML::Emitter out;
      out << YAML::BeginMap << YAML::Key << "datasource_list" << YAML::Value << YAML::Flow
          << c.datasources << YAML::EndMap;
      img.writeFile(kCloudInitDatasourceFile,
                    std::string("# written by imgpipe\n") + out.c_str() + "\n");
      done.push_back("datasources");
    }
    for (const auto& d : c.dropIns)
      img.writeFile(cloudInitDropInPath(d.name), d.content);
    if (!c.dropIns.empty()) done.push_back(std::to_string(c.dropIns.size()) + " drop-ins");
    std::string out;
    for (const auto& d : done)
      out += (out.empty() ? "" : "; ") + d;
    return out;
  }
};

}  // namespace

std::unique_ptr<Step> makeCloudInitStep() {
  return std::make_unique<CloudInitStep>();
}

}  // namespace imgpipe::build
