// Step 9a: offline checks of the FINISHED image, opened read-only where it is (FUSE export of
// the compressed qcow2 -> read-only loop -> ro,noload mount): the cleanup items, what the
// definition asked for (packages, services, files, mirrors, repositories, cloud-init), no
// password hashes, the root partition filling the disk, and a clean `e2fsck -n`.
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "agent-build/disk/read_only_image.h"
#include "agent-build/steps/cleanup_rules.h"
#include "agent-build/steps/config_files.h"
#include "agent-build/steps/step.h"
#include "agent-build/util/boot_files.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// Installed packages from /var/lib/dpkg/status: name -> (version, architecture).
std::map<std::string, PackageInfo> installedPackages(const ImageFs& img) {
  std::map<std::string, PackageInfo> out;
  auto text = img.readFile("/var/lib/dpkg/status");
  if (!text) return out;
  std::istringstream in(*text);
  PackageInfo cur;
  std::string status;
  auto flush = [&] {
    if (!cur.name.empty() && status.find("install ok installed") != std::string::npos)
      out[cur.name] = cur;
    cur = {};
    status.clear();
  };
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) {
      flush();
      continue;
    }
    auto colon = line.find(": ");
    if (colon == std::string::npos || line[0] == ' ') continue;
    auto key = line.substr(0, colon), value = line.substr(colon + 2);
    if (key == "Package")
      cur.name = value;
    else if (key == "Version")
      cur.version = value;
    else if (key == "Architecture")
      cur.architecture = value;
    else if (key == "Status")
      status = value;
  }
  flush();
  return out;
}

std::string bareName(std::string pkg) {
  for (char sep : {'=', '/', ':'})
    if (auto p = pkg.find(sep); p != std::string::npos) pkg.resize(p);
  return pkg;
}

// The unit file as systemd would find it (admin overrides first).
std::optional<std::string> unitFile(const ImageFs& img, const std::string& name) {
  for (const char* dir : {"/etc/systemd/system/", "/run/systemd/system/", "/lib/systemd/system/",
                          "/usr/lib/systemd/system/"})
    if (auto text = img.readFile(dir + name)) return text;
  return std::nullopt;
}

// Offline `systemctl is-enabled`: "enabled" (a symlink to it in some *.wants/ or *.requires/
// of /etc/systemd/system, through one alias such as sshd.service -> ssh.service), "static" (its
// unit file has no [Install] section: started by something else, e.g. qemu-guest-agent by a
// udev rule, so enabling it is a no-op), "masked", "disabled" or "not-found".
std::string unitState(const ImageFs& img, const std::string& unit) {
  std::vector<std::string> names;
  if (unit.find('.') == std::string::npos)
    names = {unit + ".service", unit + ".socket"};
  else
    names = {unit};
  for (const auto& n : names)
    if (auto t = img.readLink("/etc/systemd/system/" + n); t && *t == "/dev/null") return "masked";
  for (auto name : std::vector<std::string>(names)) {
    if (auto target = img.readLink("/etc/systemd/system/" + name); target && *target != "/dev/null")
      names.push_back(fs::path(*target).filename().string());
  }
  for (const auto& dir : img.list("/etc/systemd/system")) {
    if (!dir.ends_with(".wants") && !dir.ends_with(".requires")) continue;
    for (const auto& n : names)
      if (img.exists("/etc/systemd/system/" + dir + "/" + n)) return "enabled";
  }
  bool found = false;
  for (const auto& n : names) {
    auto text = unitFile(img, n);
    if (!text) continue;
    found = true;
    std::istringstream in(*text);
    bool install = false, hasInstallKeys = false;
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("["))
        install = line.starts_with("[Install]");
      else if (install && (line.starts_with("WantedBy") || line.starts_with("RequiredBy") ||
                           line.starts_with("Also") || line.starts_with("Alias") ||
                           line.starts_with("UpheldBy")))
        hasInstallKeys = true;
    }
    if (!hasInstallKeys) return "static";
  }
  return found ? "disabled" : "not-found";
}

bool unitEnabled(const ImageFs& img, const std::string& unit) {
  auto s = unitState(img, unit);
  return s == "enabled" || s == "static";
}

bool unitMasked(const ImageFs& img, const std::string& unit) {
  std::string name = unit.find('.') == std::string::npos ? unit + ".service" : unit;
  auto target = img.readLink("/etc/systemd/system/" + name);
  return target && *target == "/dev/null";
}

// A shadow entry whose password field holds a hash (possibly locked with '!'): an image must
// carry none — every instance would share it.
std::vector<std::string> usersWithPasswordHashes(const ImageFs& img) {
  std::vector<std::string> users;
  auto text = img.readFile("/etc/shadow");
  if (!text) return users;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    auto c1 = line.find(':');
    if (c1 == std::string::npos) continue;
    auto c2 = line.find(':', c1 + 1);
    std::string pw = line.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
    std::string bare = pw;
    while (!bare.empty() && bare.front() == '!')
      bare.erase(0, 1);
    if (bare.empty() && pw.empty())
      users.push_back(line.substr(0, c1) + " (empty password)");
    else if (bare.size() > 1 && bare != "*")
      users.push_back(line.substr(0, c1));
  }
  return users;
}

bool sameEntry(const ImageFs& img, const std::string& path, const SavedEntry& before,
               std::string& detail) {
  auto st = img.lstat(path);
  switch (before.kind) {
    case SavedEntry::Kind::absent:
      if (st) detail = path + " exists but the base had none";
      return !st;
    case SavedEntry::Kind::symlink: {
      auto t = img.readLink(path);
      if (!t || *t != before.content)
        detail = path + " is not the base's symlink to " + before.content;
      return t && *t == before.content;
    }
    case SavedEntry::Kind::file: {
      auto c = st && S_ISREG(st->st_mode) ? img.readFile(path) : std::nullopt;
      if (!c || *c != before.content) detail = path + " differs from the base's";
      return c && *c == before.content;
    }
  }
  return false;
}

std::optional<std::string> findBootFile(const ImageFs& img, const std::string& stem) {
  for (const auto& p : {"/boot/" + stem, "/" + stem})
    if (img.readFile(p)) return p;
  for (const auto& version : kernelVersions(img))
    if (img.exists("/boot/" + stem + "-" + version)) return "/boot/" + stem + "-" + version;
  return std::nullopt;
}

class ValidateStep : public Step {
 public:
  std::string_view name() const override { return "validate"; }

  std::string run(BuildContext& ctx) override {
    const auto& def = ctx.def;
    auto exec = ctx.exec();
    std::vector<Check> checks;
    auto add = [&](std::string name, bool ok, std::string detail = {}) {
      checks.push_back({std::move(name), ok, ok ? "" : std::move(detail)});
    };
    const fs::path scratch = ctx.workDir / "validate";
    fs::create_directories(scratch);
    {
      ReadOnlyImage image(ctx.output, scratch, def.disk.rootLabel, exec);
      {
        ImageFs img(image.root());
        auto clean = checkImageIsClean(img, def.cleanup);
        checks.insert(checks.end(), clean.begin(), clean.end());

        std::string detail;
        add("resolv.conf restored",
            sameEntry(img, "/etc/resolv.conf", ctx.resolvConfBefore, detail), detail);
        add("policy-rc.d removed",
            sameEntry(img, "/usr/sbin/policy-rc.d", ctx.policyRcdBefore, detail), detail);
        auto hashes = usersWithPasswordHashes(img);
        std::string users;
        for (const auto& u : hashes)
          users += (users.empty() ? "" : ", ") + u;
        add("no password hashes in /etc/shadow", hashes.empty(), "password set for " + users);

        auto pkgs = installedPackages(img);
        ctx.packages.clear();
        for (const auto& [n, p] : pkgs)
          ctx.packages.push_back(p);
        auto installed = [&](const std::string& p) { return pkgs.count(bareName(p)) > 0; };
        if (def.validation.requireCloudInit)
          add("cloud-init installed", installed("cloud-init"), "cloud-init is not installed");
        if (def.validation.requireQemuGuestAgent)
          add("qemu-guest-agent installed", installed("qemu-guest-agent"),
              "qemu-guest-agent is not installed");
        if (def.validation.requireSshd)
          add("sshd enabled",
              unitState(img, "ssh") == "enabled" || unitState(img, "sshd") == "enabled",
              "neither ssh.service, ssh.socket nor sshd.service is enabled");
        for (const auto& p : def.packages.install)
          add("package " + bareName(p) + " installed", installed(p), "not installed");
        for (const auto& p : def.packages.remove)
          add("package " + bareName(p) + " absent", !installed(p), "still installed");
        for (const auto& p : def.validation.expectPackages)
          add("package " + bareName(p) + " installed", installed(p), "not installed");
        for (const auto& u : def.services.enable)
          add("service " + u + " enabled", unitEnabled(img, u), unitState(img, u));
        for (const auto& u : def.validation.expectServices)
          add("service " + u + " enabled", unitEnabled(img, u), unitState(img, u));
        for (const auto& u : def.services.disable)
          add("service " + u + " disabled", unitState(img, u) != "enabled", "still enabled");
        for (const auto& u : def.services.mask)
          add("service " + u + " masked", unitMasked(img, u), "not masked");

        for (size_t i = 0; i < def.files.size(); ++i) {
          const auto& f = def.files[i];
          auto st = img.lstat(f.path);
          auto content = st && S_ISREG(st->st_mode) ? img.readFile(f.path) : std::nullopt;
          std::string why = !content                             ? "missing"
                            : *content != ctx.inputs.files.at(i) ? "content differs"
                                                                 : "";
          if (why.empty() && (st->st_mode & 07777) != f.mode) why = "mode differs";
          if (why.empty() &&
              (st->st_uid != img.userId(f.owner) || st->st_gid != img.groupId(f.group)))
            why = "owner differs";
          add("file " + f.path, why.empty(), why);
        }
        auto sameFile = [&](const std::string& name, const std::string& path,
                            const std::string& want) {
          auto got = img.readFile(path);
          add(name, got && *got == want, got ? path + " differs" : path + " missing");
        };
        if (def.mirrors.apt) {
          for (const auto& s : def.mirrors.apt->sources)
            sameFile("apt source " + s.name, aptSourcePath(s.name), renderAptSource(s));
          if (def.mirrors.apt->removeLegacySourcesList)
            add("legacy sources.list removed", !img.exists("/etc/apt/sources.list"),
                "/etc/apt/sources.list present");
          if (!def.mirrors.apt->proxy.empty())
            sameFile("apt proxy", kAptProxyPath, renderAptProxy(def.mirrors.apt->proxy));
        }
        if (def.mirrors.docker) {
          bool ok = false;
          try {
            auto j = nlohmann::json::parse(img.readFile(kDockerDaemonJson).value_or("{}"));
            ok = (def.mirrors.docker->registryMirrors.empty() ||
                  j.value("registry-mirrors", nlohmann::json::array()) ==
                      nlohmann::json(def.mirrors.docker->registryMirrors)) &&
                 (def.mirrors.docker->insecureRegistries.empty() ||
                  j.value("insecure-registries", nlohmann::json::array()) ==
                      nlohmann::json(def.mirrors.docker->insecureRegistries));
          } catch (const std::exception&) {
          }
          add("docker registry mirrors", ok, std::string(kDockerDaemonJson) + " lacks the mirrors");
        }
        if (def.mirrors.containerd)
          for (const auto& r : def.mirrors.containerd->registries)
            sameFile("containerd mirror " + r.host, hostsTomlPath(*def.mirrors.containerd, r),
                     renderHostsToml(r));
        for (size_t i = 0; i < def.repositories.size(); ++i) {
          const auto& repo = def.repositories[i];
          auto keyPath = repositoryKeyPath(repo, ctx.inputs.repositoryKeys.at(i));
          sameFile("repository " + repo.name + " key", keyPath, ctx.inputs.repositoryKeys.at(i));
          sameFile("repository " + repo.name, aptSourcePath(repo.name),
                   renderRepositorySource(repo, keyPath));
        }
        for (const auto& d : def.cloudInit.dropIns)
          sameFile("cloud-init " + d.name, cloudInitDropInPath(d.name), d.content);
        if (def.cloudInit.defaultUserGroups || !def.cloudInit.addGroups.empty()) {
          std::vector<std::string> want =
              def.cloudInit.defaultUserGroups.value_or(def.cloudInit.addGroups);
          std::vector<std::string> got;
          try {
            auto y = YAML::Load(img.readFile(kCloudInitUserFile).value_or(""));
            for (const auto& g : y["system_info"]["default_user"]["groups"])
              got.push_back(g.as<std::string>());
          } catch (const YAML::Exception&) {
          }
          std::string missing;
          for (const auto& g : want)
            if (std::find(got.begin(), got.end(), g) == got.end()) missing += " " + g;
          add("cloud-init default user groups", missing.empty(), "missing:" + missing);
        }
        if (!def.cloudInit.datasources.empty())
          add("cloud-init datasources", img.exists(kCloudInitDatasourceFile),
              std::string(kCloudInitDatasourceFile) + " missing");

        if (def.validation.bootTest.enabled) {
          auto kernel = findBootFile(img, "vmlinuz");
          auto initrd = findBootFile(img, "initrd.img");
          add("kernel and initrd present", kernel && initrd,
              "no /boot/vmlinuz or /boot/initrd.img for the acceptance boot");
        }
      }

      // The root partition must end at the end of the disk (GPT keeps 33 sectors for its
      // backup), and the filesystem must fill the partition — else first boot has to grow it.
      const auto& root = image.rootPartition();
      std::uint64_t lastPartitionEnd = 0;
      for (const auto& p : image.partitions())
        lastPartitionEnd = std::max(lastPartitionEnd, p.start + p.size);
      const std::uint64_t slack = image.diskSize() - (root.start + root.size);
      add("root partition fills the disk",
          root.start + root.size == lastPartitionEnd && slack <= (1ull << 20) + 33 * 512,
          formatBytes(slack) + " unused after the root partition");
      if (root.fsType.starts_with("ext")) {
        auto info = build::run(exec, {"dumpe2fs", "-h", root.device.string()}, true);
        std::smatch count, size;
        std::regex_search(info, count, std::regex("Block count:\\s+([0-9]+)"));
        std::regex_search(info, size, std::regex("Block size:\\s+([0-9]+)"));
        std::uint64_t fsBytes =
            count.empty() || size.empty() ? 0 : std::stoull(count[1]) * std::stoull(size[1]);
        add("filesystem fills the partition", fsBytes + (1ull << 20) >= root.size,
            "filesystem " + formatBytes(fsBytes) + " in a " + formatBytes(root.size) +
                " partition");
        image.unmountRoot();
        auto fsck = runUnchecked(exec, {"e2fsck", "-f", "-n", root.device.string()});
        std::string tail;
        for (const auto& l : fsck.tail)
          tail += " | " + l;
        add("e2fsck -n clean", fsck.exitCode == 0,
            "exit code " + std::to_string(fsck.exitCode) + tail);
      }
    }

    nlohmann::json list = nlohmann::json::array();
    std::vector<std::string> failed;
    for (const auto& c : checks) {
      list.push_back({{"check", c.name}, {"ok", c.ok}, {"detail", c.detail}});
      if (!c.ok) failed.push_back(c.name + ": " + c.detail);
      ctx.log.detail(std::string(c.ok ? "ok    " : "FAILED ") + c.name +
                     (c.ok ? "" : ": " + c.detail));
    }
    ctx.validation["checks"] = list;
    ctx.validation["passed"] = failed.empty();
    if (!failed.empty()) {
      std::string msg = "validation failed (" + std::to_string(failed.size()) + " of " +
                        std::to_string(checks.size()) + " checks):";
      for (const auto& f : failed)
        msg += "\n  " + f;
      throw Error(msg);
    }
    return std::to_string(checks.size()) + " checks passed";
  }
};

}  // namespace

std::unique_ptr<Step> makeValidateStep() {
  return std::make_unique<ValidateStep>();
}

}  // namespace imgpipe::build
