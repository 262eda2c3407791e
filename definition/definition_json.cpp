#include "definition/definition_json.h"

#include <sstream>

#include "common/units.h"
#include "definition/parse_definition.h"
#include "definition/resolved_glance.h"

namespace imgpipe::definition {
namespace {

using nlohmann::json;

std::string modeString(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

json contentJson(const ContentSource& c, const char* inlineKey, const char* fileKey,
                 const char* urlKey, const char* shaKey) {
  json j = json::object();
  switch (c.kind) {
    case ContentSource::Kind::inline_:
      j[inlineKey] = c.text;
      break;
    case ContentSource::Kind::file:
      j[fileKey] = c.text;
      break;
    case ContentSource::Kind::url:
      j[urlKey] = c.text;
      break;
  }
  if (!c.sha256.empty()) j[shaKey] = c.sha256;
  return j;
}

json stanzaJson(const std::vector<std::string>& types, const std::vector<std::string>& uris,
                const std::vector<std::string>& suites, const std::vector<std::string>& components,
                const std::vector<std::string>& architectures) {
  json j;
  j["types"] = types;
  j["uris"] = uris;
  j["suites"] = suites;
  j["components"] = components;
  j["architectures"] = architectures;
  return j;
}

std::vector<std::string> outputNames(const ImageDefinition& def) {
  std::vector<std::string> names;
  for (auto kind : def.outputs)
    names.emplace_back(toString(kind));
  return names;
}

std::string joined(const std::vector<std::string>& v, const char* sep = " ") {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string describe(const ContentSource& c) {
  switch (c.kind) {
    case ContentSource::Kind::inline_:
      return "inline, " + formatBytes(c.text.size());
    case ContentSource::Kind::file:
      return "from " + c.text;
    case ContentSource::Kind::url:
      return "from " + c.text + (c.sha256.empty() ? "" : " (sha256 pinned)");
  }
  return "";
}

json baseFileJson(const BaseFile& f) {
  return {{"path", f.path}, {"url", f.url}, {"sha256", f.sha256}};
}

std::string baseFileSummary(const BaseFile& f) {
  return f.name() +
         (f.sha256.empty() ? ", not pinned" : " sha256 " + f.sha256.substr(0, 12) + "...");
}

std::string treeSummary(const TreeDiskSpec& t) {
  return formatBytes(t.size) + " disk, root label " + t.rootLabel + ", bootloader " + t.bootloader +
         (t.packages.empty() ? "" : ", + " + joined(t.packages));
}

}  // namespace

json toJson(const ImageDefinition& def) {
  json j;
  j["name"] = def.name;
  j["version"] = def.version;
  j["description"] = def.description;

  json base;
  if (auto* p = std::get_if<PathBase>(&def.base)) {
    base["path"] = p->path;
    base["sha256"] = p->sha256;
    base["packing"] = toString(packingOf(p->disk.packing, p->path));
    base["format"] = p->disk.format;
  } else if (auto* u = std::get_if<UrlBase>(&def.base)) {
    base["url"] = u->url;
    base["sha256"] = u->sha256;
    base["packing"] = toString(packingOf(u->disk.packing, u->url));
    base["format"] = u->disk.format;
  } else if (auto* d = std::get_if<DebootstrapBase>(&def.base)) {
    base["debootstrap"] = {{"suite", d->suite},
                           {"mirror", d->mirror},
                           {"variant", d->variant},
                           {"components", d->components},
                           {"keyring", d->keyring}};
  } else if (auto* r = std::get_if<RootfsBase>(&def.base)) {
    base["rootfs"] = baseFileJson(r->file);
  } else {
    const auto& o = std::get<OciBase>(def.base);
    base["oci"] = baseFileJson(o.file);
    base["oci"]["registry"] = o.registry;
    base["oci"]["format"] = o.format ? json(toString(*o.format)) : json(nullptr);
    base["oci"]["ref"] = o.ref;
  }
  if (const auto* t = treeDiskOf(def.base))
    base[std::string(baseKind(def.base))].update(json{{"packages", t->packages},
                                                      {"size", t->size},
                                                      {"root_label", t->rootLabel},
                                                      {"bootloader", t->bootloader},
                                                      {"kernel_cmdline", t->kernelCmdline}});
  j["base"] = base;

  j["disk"] = {{"size", def.disk.size ? json(*def.disk.size) : json(nullptr)},
               {"root_label", def.disk.rootLabel},
               {"compression",
                def.disk.compression ? json(toString(*def.disk.compression)) : json(nullptr)}};

  json mirrors = json::object();
  if (def.mirrors.apt) {
    json sources = json::array();
    for (const auto& s : def.mirrors.apt->sources) {
      auto sj = stanzaJson(s.types, s.uris, s.suites, s.components, s.architectures);
      sj["name"] = s.name;
      sj["signed_by"] = s.signedBy;
      sources.push_back(sj);
    }
    mirrors["apt"] = {{"sources", sources},
                      {"remove_legacy_sources_list", def.mirrors.apt->removeLegacySourcesList},
                      {"proxy", def.mirrors.apt->proxy}};
  }
  if (def.mirrors.docker)
    mirrors["docker"] = {{"registry_mirrors", def.mirrors.docker->registryMirrors},
                         {"insecure_registries", def.mirrors.docker->insecureRegistries}};
  if (def.mirrors.containerd) {
    json regs = json::array();
    for (const auto& r : def.mirrors.containerd->registries) {
      json ms = json::array();
      for (const auto& m : r.mirrors)
        ms.push_back({{"url", m.url},
                      {"capabilities", m.capabilities},
                      {"skip_verify", m.skipVerify},
                      {"override_path", m.overridePath}});
      regs.push_back({{"host", r.host}, {"server", r.server}, {"mirrors", ms}});
    }
    mirrors["containerd"] = {{"config_path", def.mirrors.containerd->configPath},
                             {"registries", regs}};
  }
  j["mirrors"] = mirrors;

  json repos = json::array();
  for (const auto& r : def.repositories) {
    auto rj = stanzaJson(r.types, r.uris, r.suites, r.components, r.architectures);
    rj["name"] = r.name;
    rj.update(contentJson(r.key, "key", "key_file", "key_url", "key_sha256"));
    repos.push_back(rj);
  }
  j["repositories"] = repos;

  j["packages"] = {{"update", def.packages.update},
                   {"upgrade", def.packages.upgrade},
                   {"install_recommends", def.packages.installRecommends},
                   {"install", def.packages.install},
                   {"remove", def.packages.remove}};

  json files = json::array();
  for (const auto& f : def.files) {
    json fj = {{"path", f.path}, {"mode", modeString(f.mode)}, {"owner", f.owner + ":" + f.group}};
    fj.update(contentJson(f.content, "content", "source", "url", "sha256"));
    files.push_back(fj);
  }
  j["files"] = files;

  json scripts = json::array();
  for (const auto& s : def.scripts) {
    json sj = {{"name", s.name},
               {"interpreter", s.interpreter},
               {"timeout_ms", s.timeout.count()},
               {"env", s.env}};
    sj.update(contentJson(s.content, "run", "source", "url", "sha256"));
    scripts.push_back(sj);
  }
  j["scripts"] = scripts;
  if (def.ansible)
    j["ansible"] = {{"playbook", def.ansible->playbook},
                    {"include", def.ansible->include},
                    {"roles_path", def.ansible->rolesPath},
                    {"extra_vars", def.ansible->extraVars},
                    {"tags", def.ansible->tags},
                    {"skip_tags", def.ansible->skipTags},
                    {"timeout_ms", def.ansible->timeout.count()}};

  json ci;
  ci["default_user"] = {
      {"name", def.cloudInit.defaultUserName},
      {"groups",
       def.cloudInit.defaultUserGroups ? json(*def.cloudInit.defaultUserGroups) : json(nullptr)},
      {"add_groups", def.cloudInit.addGroups},
      {"shell", def.cloudInit.defaultUserShell},
      {"sudo", def.cloudInit.defaultUserSudo}};
  ci["datasources"] = def.cloudInit.datasources;
  json dropIns = json::array();
  for (const auto& d : def.cloudInit.dropIns)
    dropIns.push_back({{"name", d.name}, {"content", d.content}});
  ci["drop_ins"] = dropIns;
  j["cloud_init"] = ci;

  j["services"] = {{"enable", def.services.enable},
                   {"disable", def.services.disable},
                   {"mask", def.services.mask}};
  j["cleanup"] = {{"remove", def.cleanup.remove},
                  {"recreate_journal", def.cleanup.recreateJournal}};
  const auto& bt = def.validation.bootTest;
  nlohmann::json bootChecks = nlohmann::json::array();
  for (const auto& c : bt.checks)
    bootChecks.push_back({{"name", c.name},
                          {"run", c.run},
                          {"exit_code", c.exitCode},
                          {"output", c.output},
                          {"timeout_ms", c.timeout.count()},
                          {"nspawn", c.nspawn}});
  j["validation"] = {{"boot_test",
                      {{"enabled", bt.enabled},
                       {"method", std::string(toString(bt.method))},
                       {"firmware", std::string(toString(bt.firmware))},
                       {"timeout_ms", bt.timeout.count()},
                       {"memory", bt.memory},
                       {"disk_size", bt.diskSize ? nlohmann::json(*bt.diskSize) : nullptr},
                       {"resolve", bt.resolve},
                       {"checks", bootChecks}}},
                     {"expect_packages", def.validation.expectPackages},
                     {"expect_services", def.validation.expectServices},
                     {"require_cloud_init", def.validation.requireCloudInit},
                     {"require_qemu_guest_agent", def.validation.requireQemuGuestAgent},
                     {"require_sshd", def.validation.requireSshd}};
  // Only when set: existing definitions keep their content digest (result key).
  if (!bt.outputs.empty()) {
    auto booted = nlohmann::json::array();
    for (auto kind : bt.outputs)
      booted.push_back(toString(kind));
    j["validation"]["boot_test"]["outputs"] = booted;
  }

  const auto& g = def.glance;
  j["glance"] = {{"display_name", g.displayName},
                 {"visibility", toString(g.visibility)},
                 {"min_disk", g.minDiskGiB ? json(*g.minDiskGiB) : json(nullptr)},
                 {"min_ram", g.minRamMiB ? json(*g.minRamMiB) : json(nullptr)},
                 {"tags", g.tags},
                 {"protected", g.protected_},
                 {"older_versions", g.olderVersions ? std::string(toString(*g.olderVersions))
                                                    : std::string("agent default")},
                 {"metadata", g.metadata},
                 {"properties", g.properties}};
  // Only when set: the content digest (the result key) of every definition without it stays
  // what it was.
  if (def.network != Network::host) j["network"] = toString(def.network);
  if (def.outputs != std::vector<OutputKind>{OutputKind::qcow2}) j["outputs"] = outputNames(def);
  return j;
}

std::string summarize(const ImageDefinition& def) {
  std::ostringstream o;
  auto row = [&](const char* label, const std::string& text) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "  %-13s", label);
    o << buf << text << "\n";
  };
  o << def.name << "  version "
    << (def.version.empty() ? "fixed when the job is submitted (UTC, YYYY.MM.DD-HHMMSS)"
                            : def.version)
    << "\n";
  if (!def.description.empty()) row("description", def.description);

  // ", a vagrant-box, vmdk inside": how the disk comes, when it is not a plain image.
  auto packed = [](const DiskPacking& d, const std::string& name) {
    const auto p = packingOf(d.packing, name);
    std::string out = p == BasePacking::none ? "" : ", " + std::string(toString(p));
    if (!d.format.empty()) out += ", " + d.format + (p == BasePacking::none ? "" : " inside");
    return out;
  };
  if (auto* p = std::get_if<PathBase>(&def.base)) {
    row("base",
        "local image " + p->path +
            (p->sha256.empty() ? " (not pinned)" : " sha256 " + p->sha256.substr(0, 12) + "...") +
            packed(p->disk, p->path));
  } else if (auto* u = std::get_if<UrlBase>(&def.base)) {
    row("base", u->url + " sha256 " + u->sha256.substr(0, 12) + "..." + packed(u->disk, u->url));
  } else if (auto* d = std::get_if<DebootstrapBase>(&def.base)) {
    row("base", "debootstrap " + d->suite + " from " + d->mirror + " (" + d->variant + ", " +
                    treeSummary(d->tree) + ")");
  } else if (auto* r = std::get_if<RootfsBase>(&def.base)) {
    row("base", "root tarball " + baseFileSummary(r->file) + "; " + treeSummary(r->tree));
  } else {
    const auto& oci = std::get<OciBase>(def.base);
    row("base", "OCI image " +
                    (oci.registry.empty() ? baseFileSummary(oci.file)
                                          : "docker://" + oci.registry + " sha256 " +
                                                oci.file.sha256.substr(0, 12) + "...") +
                    (oci.format ? ", " + std::string(toString(*oci.format)) : std::string()) +
                    (oci.ref.empty() ? "" : ", ref " + oci.ref) + "; " + treeSummary(oci.tree));
  }
  row("disk", (def.disk.size ? formatBytes(*def.disk.size) : std::string("size of the base")) +
                  ", compression " +
                  (def.disk.compression ? std::string(toString(*def.disk.compression))
                                        : std::string("agent default")));

  if (def.mirrors.empty()) {
    row("mirrors", "-");
  } else {
    bool first = true;
    auto mrow = [&](const std::string& text) {
      row(first ? "mirrors" : "", text);
      first = false;
    };
    if (def.mirrors.apt) {
      for (const auto& s : def.mirrors.apt->sources)
        mrow("apt " + s.name + ".sources: " + joined(s.uris) + " " + joined(s.suites) + " " +
             joined(s.components));
      if (def.mirrors.apt->removeLegacySourcesList)
        mrow("apt: legacy /etc/apt/sources.list removed");
      if (!def.mirrors.apt->proxy.empty()) mrow("apt proxy " + def.mirrors.apt->proxy);
    }
    if (def.mirrors.docker) {
      if (!def.mirrors.docker->registryMirrors.empty())
        mrow("docker registry-mirrors: " + joined(def.mirrors.docker->registryMirrors));
      if (!def.mirrors.docker->insecureRegistries.empty())
        mrow("docker insecure-registries: " + joined(def.mirrors.docker->insecureRegistries));
    }
    if (def.mirrors.containerd)
      for (const auto& r : def.mirrors.containerd->registries) {
        std::vector<std::string> urls;
        for (const auto& m : r.mirrors)
          urls.push_back(m.url);
        mrow("containerd " + r.host + " -> " + joined(urls));
      }
  }
  if (def.repositories.empty()) row("repositories", "-");
  for (size_t i = 0; i < def.repositories.size(); ++i) {
    const auto& r = def.repositories[i];
    row(i == 0 ? "repositories" : "", r.name + ": " + joined(r.uris) + " " + joined(r.suites) +
                                          " " + joined(r.components) + " (key " + describe(r.key) +
                                          ")");
  }
  row("packages",
      "install " + std::to_string(def.packages.install.size()) +
          (def.packages.install.empty() ? "" : " (" + joined(def.packages.install) + ")") +
          ", remove " + std::to_string(def.packages.remove.size()) +
          (def.packages.remove.empty() ? "" : " (" + joined(def.packages.remove) + ")") +
          "; update " + (def.packages.update ? "yes" : "no") + ", upgrade " +
          (def.packages.upgrade ? "yes" : "no") + ", recommends " +
          (def.packages.installRecommends ? "yes" : "no"));
  if (def.files.empty()) row("files", "-");
  for (size_t i = 0; i < def.files.size(); ++i) {
    const auto& f = def.files[i];
    row(i == 0 ? "files" : "", f.path + " (" + modeString(f.mode) + " " + f.owner + ":" + f.group +
                                   ", " + describe(f.content) + ")");
  }
  if (def.scripts.empty()) row("scripts", "-");
  for (size_t i = 0; i < def.scripts.size(); ++i) {
    const auto& s = def.scripts[i];
    row(i == 0 ? "scripts" : "", std::to_string(i + 1) + ". " + s.name + " (" +
                                     describe(s.content) + ", timeout " +
                                     formatDuration(s.timeout) + ")");
  }
  if (def.ansible) {
    std::string line = def.ansible->playbook + " (chroot connection, timeout " +
                       formatDuration(def.ansible->timeout);
    for (const auto& r : def.ansible->rolesPath)
      line += ", roles " + r;
    if (!def.ansible->tags.empty())
      line += ", " + std::to_string(def.ansible->tags.size()) + " tags";
    row("ansible", line + ")");
  }
  {
    const auto& c = def.cloudInit;
    std::vector<std::string> parts;
    if (!c.defaultUserName.empty()) parts.push_back("default user " + c.defaultUserName);
    if (c.defaultUserGroups)
      parts.push_back("default user groups = " + joined(*c.defaultUserGroups, ","));
    if (!c.addGroups.empty()) parts.push_back("default user groups += " + joined(c.addGroups, ","));
    if (!c.datasources.empty()) parts.push_back("datasources " + joined(c.datasources, ","));
    for (const auto& d : c.dropIns)
      parts.push_back("drop-in " + d.name);
    row("cloud-init", parts.empty() ? "-" : joined(parts, "; "));
  }
  row("services", def.services.empty() ? "-"
                                       : "enable [" + joined(def.services.enable) + "], disable [" +
                                             joined(def.services.disable) + "], mask [" +
                                             joined(def.services.mask) + "]");
  if (def.network == Network::none)
    row("network", "none for scripts and package scripts (apt downloads still reach the mirror)");
  if (def.network == Network::proxy)
    row("network", "only the build agent's proxy, for every command in the image");
  row("cleanup", std::string("standard") +
                     (def.cleanup.remove.empty() ? "" : " + remove " + joined(def.cleanup.remove)) +
                     (def.cleanup.recreateJournal ? ", journal re-created" : ", journal kept"));
  {
    const auto& v = def.validation;
    std::string text = "offline checks";
    std::vector<std::string> req;
    if (v.requireCloudInit) req.push_back("cloud-init");
    if (v.requireQemuGuestAgent) req.push_back("qemu-guest-agent");
    if (v.requireSshd) req.push_back("sshd");
    if (!req.empty()) text += " (requires " + joined(req, ", ") + ")";
    if (!v.expectPackages.empty()) text += "; packages " + joined(v.expectPackages);
    if (!v.expectServices.empty()) text += "; enabled " + joined(v.expectServices);
    const auto& bt = v.bootTest;
    text += bt.enabled
                ? "; acceptance boot of " + namesOf(bootedOutputs(def)) + " (" +
                      std::string(toString(bt.method)) +
                      (bt.method == BootMethod::qemu
                           ? ", firmware " + std::string(toString(bt.firmware))
                           : "") +
                      (bt.checks.empty()
                           ? ""
                           : ", " + std::to_string(bt.checks.size()) + " checks of its own") +
                      ", " + formatDuration(bt.timeout) + " per boot)"
                : "; no acceptance boot";
    row("validation", text);
  }
  {
    const auto& g = def.glance;
    std::string version = def.version.empty() ? "<version>" : def.version;
    std::string text =
        "\"" + g.displayNameFor(def.name, version) + "\", " + std::string(toString(g.visibility));
    text +=
        ", min_disk " +
        (g.minDiskGiB
             ? std::to_string(*g.minDiskGiB) + " GiB"
             : (def.disk.size ? std::to_string(minDiskGiBFor(*def.disk.size)) + " GiB (disk size)"
                              : std::string("= disk size")));
    if (g.minRamMiB) text += ", min_ram " + std::to_string(*g.minRamMiB) + " MiB";
    if (!g.tags.empty()) text += ", tags [" + joined(g.tags, ", ") + "]";
    if (g.protected_) text += ", protected";
    text += ", older versions: " + (g.olderVersions ? std::string(toString(*g.olderVersions))
                                                    : std::string("agent default"));
    row("glance", text);
    row("outputs",
        namesOf(def.outputs) +
            (lists(def.outputs, OutputKind::raw)
                 ? " (raw expanded from the delivered qcow2 at each controller)"
                 : "") +
            (lists(def.outputs, OutputKind::iso) ? " (iso delivered as an artifact of its own)"
                                                 : ""));
    auto props = g.allProperties();
    std::string line;
    for (const auto& [k, v] : props)
      line += (line.empty() ? "" : ", ") + k + "=" + v;
    if (!props.empty()) row("", "properties (" + std::to_string(props.size()) + "): " + line);
  }
  return o.str();
}

}  // namespace imgpipe::definition
