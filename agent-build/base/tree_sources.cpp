#include "agent-build/base/tree_sources.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <set>

#include "agent-build/base/bootable_tree.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// skopeo verifies signatures by policy; a base is pinned by its digest instead, so the policy
// accepts what the digest check (the definition's sha256) already decided.
constexpr const char* kAcceptPolicy = R"({"default":[{"type":"insecureAcceptAnything"}]})";

std::string transportOf(definition::OciFormat f) {
  switch (f) {
    case definition::OciFormat::layout:
      return "oci";
    case definition::OciFormat::ociArchive:
      return "oci-archive";
    case definition::OciFormat::dockerArchive:
      return "docker-archive";
  }
  return "";
}

bool isSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

std::string unpackRootfsTarball(const ExecContext& exec, const fs::path& tarball,
                                const fs::path& rootfs) {
  fs::create_directories(rootfs);
  run(exec, {"tar", "--extract", "--file", tarball.string(), "--directory", rootfs.string(),
             "--numeric-owner", "--same-owner", "--same-permissions", "--xattrs",
             "--xattrs-include=*", "--delay-directory-restore", "--warning=no-unknown-keyword"});
  const int devices = removeDeviceNodes(rootfs);
  return tarball.filename().string() +
         (devices ? " (" + std::to_string(devices) + " device nodes left out)" : "");
}

std::string ociLayoutIdentity(const fs::path& layout) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(layout, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const auto st = it->symlink_status(ec);
    if (ec) break;
    if (!fs::is_regular_file(st) && !fs::is_directory(st))
      throw Error("OCI layout " + layout.string() + " holds " + it->path().string() +
                  ", which is not a plain file or directory; refusing it: a build reads only the "
                  "image it was given");
  }
  if (ec) throw Error("reading OCI layout " + layout.string() + ": " + ec.message());
  if (!fs::is_regular_file(layout / "index.json") || !fs::is_regular_file(layout / "oci-layout"))
    throw Error("base " + layout.string() +
                " is not an OCI image layout (no index.json and oci-layout in it)");
  return toHex(sha256(readFile(layout / "index.json")));
}

definition::OciFormat ociFormatOf(const ExecContext& exec, const definition::OciBase& spec,
                                  const fs::path& file) {
  if (spec.format) return *spec.format;
  if (fs::is_directory(file)) return definition::OciFormat::layout;
  const auto members = run(exec, {"tar", "--list", "--file", file.string()}, true);
  auto has = [&](const std::string& name) {
    return members.starts_with(name + "\n") ||
           members.find("\n" + name + "\n") != std::string::npos ||
           members.starts_with("./" + name + "\n") ||
           members.find("\n./" + name + "\n") != std::string::npos;
  };
  if (has("oci-layout")) return definition::OciFormat::ociArchive;
  if (has("manifest.json")) return definition::OciFormat::dockerArchive;
  throw Error("base " + file.string() +
              " is neither an oci-archive (no oci-layout in it) nor a docker-archive (no "
              "manifest.json); say which with format:");
}

OciSource localOciSource(definition::OciFormat format, const fs::path& file,
                         const std::string& ref) {
  // skopeo's references split at ':'; a path with one would name another image.
  if (file.string().find(':') != std::string::npos)
    throw Error("base " + file.string() + ": an OCI base's path must not contain ':'");
  return {transportOf(format) + ":" + file.string() + (ref.empty() ? "" : ":" + ref), "", {}};
}

std::string registriesConf(const definition::MirrorSpec& mirrors) {
  struct Registry {
    std::string location;
    bool insecure = false;
    std::vector<std::pair<std::string, bool>> mirrors;  // location, insecure
  };
  std::map<std::string, Registry> byPrefix;
  std::set<std::string> insecureHosts;
  if (mirrors.docker)
    for (const auto& h : mirrors.docker->insecureRegistries)
      insecureHosts.insert(h);
  // registries.conf names a location by host[:port][/path], without a scheme.
  auto location = [&](const std::string& url, bool skipVerify) {
    std::string loc = url;
    bool insecure = skipVerify;
    if (loc.starts_with("http://")) {
      loc = loc.substr(7);
      insecure = true;
    } else if (loc.starts_with("https://")) {
      loc = loc.substr(8);
    }
    while (loc.ends_with("/"))
      loc.pop_back();
    if (insecureHosts.count(loc.substr(0, loc.find('/')))) insecure = true;
    return std::pair(loc, insecure);
  };
  if (mirrors.docker && !mirrors.docker->registryMirrors.empty()) {
    auto& r = byPrefix["docker.io"];
    r.location = "docker.io";
    for (const auto& m : mirrors.docker->registryMirrors)
      r.mirrors.push_back(location(m, false));
  }
  if (mirrors.containerd)
    for (const auto& reg : mirrors.containerd->registries) {
      auto& r = byPrefix[reg.host];
      r.location = reg.server.empty() ? reg.host : location(reg.server, false).first;
      for (const auto& m : reg.mirrors)
        r.mirrors.push_back(location(m.url, m.skipVerify));
    }
  for (const auto& h : insecureHosts) {
    auto& r = byPrefix[h];
    if (r.location.empty()) r.location = h;
    r.insecure = true;
  }
  auto quoted = [](const std::string& v) { return json(v).dump(); };
  std::string out = "# written by imgpipe for one pull\nunqualified-search-registries = []\n";
  for (const auto& [prefix, r] : byPrefix) {
    out += "\n[[registry]]\nprefix = " + quoted(prefix) + "\nlocation = " + quoted(r.location) +
           "\ninsecure = " + (r.insecure ? "true" : "false") + "\n";
    for (const auto& [loc, insecure] : r.mirrors)
      out += "\n[[registry.mirror]]\nlocation = " + quoted(loc) +
             "\ninsecure = " + (insecure ? "true" : "false") + "\n";
  }
  return out;
}

OciSource registryOciSource(const definition::OciBase& spec, const definition::MirrorSpec& mirrors,
                            const std::optional<BuildProxy>& proxy) {
  // By digest only: a tag names whatever was pushed last, the digest names this image.
  std::string name = spec.registry;
  if (auto slash = name.rfind('/'), colon = name.rfind(':');
      colon != std::string::npos && colon > slash)
    name = name.substr(0, colon);
  OciSource s;
  s.reference = "docker://" + name + "@sha256:" + spec.file.sha256;
  s.registriesConf = registriesConf(mirrors);
  if (proxy) s.env = proxyEnvironment(*proxy);
  return s;
}

std::string unpackOciImage(const ExecContext& exec, const OciSource& source,
                           const std::string& expectedManifest, const fs::path& scratch,
                           const fs::path& rootfs, BuildLog& log) {
  fs::create_directories(scratch);
  const fs::path policy = scratch / "policy.json";
  writeFileAtomic(policy, kAcceptPolicy);
  const fs::path layout = scratch / "layout";
  std::vector<std::string> argv = {"skopeo", "--policy", policy.string(), "--tmpdir",
                                   scratch.string()};
  if (!source.registriesConf.empty()) {
    const fs::path conf = scratch / "registries.conf";
    writeFileAtomic(conf, source.registriesConf);
    argv.insert(argv.end(), {"--registries-conf", conf.string()});
  }
  argv.insert(argv.end(),
              {"copy", "--quiet", source.reference, "oci:" + layout.string() + ":base"});
  log.info("copying " + source.reference + " (skopeo, every blob checked against its digest)");
  auto o = commandOptions(exec, std::move(argv));
  o.env = source.env;
  run(exec, std::move(o));
  const auto index = json::parse(readFile(layout / "index.json"));
  const auto& manifests = index.at("manifests");
  if (manifests.size() != 1)
    throw Error("copying " + source.reference + " gave " + std::to_string(manifests.size()) +
                " images, expected one");
  std::string digest = manifests[0].at("digest").get<std::string>();
  if (!digest.starts_with("sha256:") || !isSha256Hex(digest.substr(7)))
    throw Error("image manifest digest " + digest + " is not a sha256 digest");
  digest = digest.substr(7);
  if (!expectedManifest.empty() && digest != expectedManifest)
    throw Error("base checksum mismatch: " + source.reference + " has image manifest sha256:" +
                digest + ", the definition expects sha256:" + expectedManifest);
  const auto manifest = json::parse(readFile(layout / "blobs" / "sha256" / digest));
  log.info("unpacking " + std::to_string(manifest.at("layers").size()) +
           " layers (umoci, whiteouts applied)");
  const fs::path bundle = scratch / "bundle";
  // --keep-dirlinks: a layer's bin/x lands in usr/bin when a lower layer made bin a link to
  // usr/bin (usrmerge), as an overlay filesystem would show it.
  run(exec, {"umoci", "unpack", "--keep-dirlinks", "--image", layout.string() + ":base",
             bundle.string()});
  fs::rename(bundle / "rootfs", rootfs);
  fs::remove_all(bundle);
  fs::remove_all(layout);
  if (const int devices = removeDeviceNodes(rootfs))
    log.info("left out " + std::to_string(devices) + " device nodes of the image");
  return digest;
}

}  // namespace imgpipe::build
