#include "agent-build/boot/image_facts.h"

#include <netdb.h>

#include <algorithm>
#include <cctype>

#include "agent-build/disk/read_only_image.h"
#include "agent-build/util/boot_files.h"
#include "agent-build/util/image_fs.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

constexpr const char* kEspTypeGuid = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool dpkgInstalled(const std::string& status, const std::string& name) {
  auto at = status.find("Package: " + name + "\n");
  if (at == std::string::npos) return false;
  auto end = status.find("\n\n", at);
  return status.substr(at, end - at).find("Status: install ok installed") != std::string::npos;
}

std::string hostOf(const std::string& uri) {
  auto start = uri.find("://");
  if (start == std::string::npos) return {};
  start += 3;
  auto end = uri.find_first_of(":/", start);
  auto host = uri.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (auto at = host.rfind('@'); at != std::string::npos) host.erase(0, at + 1);
  return host;
}

std::string defaultResolveName(const definition::ImageDefinition& def) {
  if (!def.validation.bootTest.resolve.empty()) return def.validation.bootTest.resolve;
  if (def.mirrors.apt)
    for (const auto& s : def.mirrors.apt->sources)
      for (const auto& u : s.uris)
        if (auto h = hostOf(u); !h.empty()) return h;
  if (auto* d = std::get_if<definition::DebootstrapBase>(&def.base))
    if (auto h = hostOf(d->mirror); !h.empty()) return h;
  for (const auto& r : def.repositories)
    for (const auto& u : r.uris)
      if (auto h = hostOf(u); !h.empty()) return h;
  return "deb.debian.org";
}

bool hostResolves(const std::string& name) {
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(name.c_str(), nullptr, nullptr, &res);
  if (res) ::freeaddrinfo(res);
  return rc == 0;
}

}  // namespace

ImageFacts inspectImage(const fs::path& qcow2, const fs::path& scratch,
                        const std::string& rootLabelHint, const ExecContext& exec) {
  ImageFacts facts;
  fs::create_directories(scratch);
  ReadOnlyImage image(qcow2, scratch, rootLabelHint, exec);
  facts.virtualSize = image.diskSize();
  for (const auto& p : image.partitions())
    facts.hasEsp |= lower(p.partTypeGuid) == kEspTypeGuid;
  ImageFs img(image.root());
  auto trim = [](std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
      s.pop_back();
    return s;
  };
  facts.machineId = trim(img.readFile("/etc/machine-id").value_or(""));
  for (const auto& name : img.list("/etc/ssh"))
    if (name.starts_with("ssh_host_") && name.ends_with("_key.pub"))
      if (auto text = img.readFile("/etc/ssh/" + name))
        facts.sshHostKeys.push_back(toHex(sha256(*text)));
  const auto status = img.readFile("/var/lib/dpkg/status").value_or("");
  facts.guestAgent = dpkgInstalled(status, "qemu-guest-agent");
  facts.sshd = dpkgInstalled(status, "openssh-server");
  const auto versions = kernelVersions(img);
  if (!versions.empty())
    if (auto kernel = img.readFile("/boot/vmlinuz-" + versions.front())) {
      facts.kernel = scratch / "kvm-probe-vmlinuz";
      writeFileAtomic(facts.kernel, *kernel);
    }
  return facts;
}

GuestExpectations guestExpectations(const definition::ImageDefinition& def,
                                    const ImageFacts& facts) {
  GuestExpectations e;
  e.user = def.cloudInit.defaultUserName;
  e.groups = def.cloudInit.defaultUserGroups.value_or(def.cloudInit.addGroups);
  for (const auto& list : {def.services.enable, def.validation.expectServices})
    for (const auto& u : list)
      if (std::find(e.services.begin(), e.services.end(), u) == e.services.end())
        e.services.push_back(u);
  e.imageMachineId = facts.machineId;
  e.imageSshHostKeys = facts.sshHostKeys;
  e.imageVirtualSize = facts.virtualSize;
  e.resolve = defaultResolveName(def);
  e.checks = def.validation.bootTest.checks;
  if (!facts.sshd) e.skip["ssh host keys generated"] = "openssh-server is not installed";
  // The guest resolves through the host's resolvers (QEMU's user networking, 10.0.2.3): a name
  // the build host cannot resolve says nothing about the image.
  if (!hostResolves(e.resolve))
    e.skip["dns resolves"] = "the build host cannot resolve " + e.resolve + " either";
  return e;
}

}  // namespace imgpipe::build
