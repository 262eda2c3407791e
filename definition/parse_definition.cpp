#include "definition/parse_definition.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <regex>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/units.h"
#include "common/yaml_reader.h"
#include "definition/bundle.h"
#include "definition/glance_names.h"
#include "definition/layers.h"
#include "definition/resolved_glance.h"
#include "definition/yaml_aliases.h"

namespace imgpipe::definition {
namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isLower(char c) {
  return c >= 'a' && c <= 'z';
}
bool isAlnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

bool allOf(std::string_view s, auto pred) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

// [a-z0-9._-]+ : the image name is a Glance name, an artifact name and part of file names.
bool isImageName(std::string_view s) {
  return allOf(
             s,
             [](char c) { return isLower(c) || isDigit(c) || c == '.' || c == '_' || c == '-'; }) &&
         s != "." && s != "..";
}

bool isVersion(std::string_view s) {
  return allOf(s,
               [](char c) {
                 return isAlnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '~';
               }) &&
         isAlnum(s.front());
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && allOf(s, [](char c) { return isDigit(c) || (c >= 'a' && c <= 'f'); });
}

// A file name without directories (apt source names, cloud-init drop-ins, script names).
bool isSimpleName(std::string_view s) {
  return allOf(s, [](char c) { return isAlnum(c) || c == '.' || c == '_' || c == '-'; }) &&
         isAlnum(s.front());
}

// Package names with optional =version, :arch or /release. The first character must be
// alphanumeric so that nothing can be smuggled into apt-get as an option.
bool isPackageName(std::string_view s) {
  return allOf(s,
               [](char c) {
                 return isAlnum(c) || c == '.' || c == '+' || c == '-' || c == ':' || c == '=' ||
                        c == '~' || c == '*' || c == '/' || c == '_';
               }) &&
         isAlnum(s.front());
}

bool isUnitName(std::string_view s) {
  return allOf(s,
               [](char c) {
                 return isAlnum(c) || c == '@' || c == '.' || c == '_' || c == '-' || c == ':' ||
                        c == '\\';
               }) &&
         isAlnum(s.front());
}

bool isUserName(std::string_view s) {
  if (allOf(s, isDigit)) return true;
  return allOf(
             s,
             [](char c) { return isLower(c) || isDigit(c) || c == '_' || c == '-' || c == '$'; }) &&
         (isLower(s.front()) || s.front() == '_');
}

bool isEnvName(std::string_view s) {
  return !s.empty() && allOf(s, [](char c) { return isAlnum(c) || c == '_'; }) &&
         !isDigit(s.front());
}

bool isHttpUrl(std::string_view s) {
  return (s.starts_with("http://") && s.size() > 7) || (s.starts_with("https://") && s.size() > 8);
}

bool isAptUri(std::string_view s) {
  return isHttpUrl(s) || s.starts_with("file:/") || s.starts_with("cdrom:") ||
         s.starts_with("mirror+") || s.starts_with("tor+");
}

// A path inside the image, checked and normalised once, before anything compares it with a
// reserved path: "//sys/x", "/./proc/x" and "/dev/" must meet the same checks as "/sys/x",
// "/proc/x" and "/dev". Value type.
struct ImagePath {
  std::string path;             // "/" or "/a/b": no empty or "." component, no trailing '/'
  bool namesDirectory = false;  // written with a trailing "/" or "/."
  std::string error;            // why it is not an absolute path inside the image, or ""
};

ImagePath normalizeImagePath(std::string_view p) {
  ImagePath out;
  if (p.empty() || p.front() != '/') {
    out.error = "must be an absolute path, got '" + std::string(p) + "'";
    return out;
  }
  if (std::any_of(p.begin(), p.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    out.error = "must not contain control characters";
    return out;
  }
  std::string_view rest = p;
  std::string_view last;
  while (!rest.empty()) {
    auto slash = rest.find('/');
    auto part = rest.substr(0, slash);
    last = part;
    // ".." is never needed in a definition, and resolving it lexically could climb over a
    // symlink the image put there: refused rather than normalised.
    if (part == "..") {
      out.error = "must not contain '..', got '" + std::string(p) + "'";
      return out;
    }
    if (!part.empty() && part != ".") out.path += "/" + std::string(part);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
    if (rest.empty()) last = {};
  }
  out.namesDirectory = last.empty() || last == ".";
  if (out.path.empty()) out.path = "/";
  return out;
}

// Whether `path` (normalised) is `dir` or lies beneath it.
bool isAtOrUnder(const std::string& path, std::string_view dir) {
  return path == dir ||
         (path.starts_with(dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

std::string scalar(const YamlReader& r) {
  return r.as<std::string>();
}

// A list of scalars, each checked; the error points at the offending element.
std::vector<std::string> checkedList(const YamlReader& list, bool (*ok)(std::string_view),
                                     std::string_view what) {
  std::vector<std::string> out;
  if (list.isNull()) return out;
  if (list.isScalar()) {
    auto v = scalar(list);
    if (!ok(v)) list.fail("'" + v + "' is not a valid " + std::string(what));
    out.push_back(v);
    return out;
  }
  for (const auto& item : list.items()) {
    auto v = scalar(item);
    if (!ok(v)) item.fail("'" + v + "' is not a valid " + std::string(what));
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> nonEmptyList(const YamlReader& list, std::string_view what) {
  return checkedList(
      list, [](std::string_view s) { return !s.empty(); }, what);
}

// The normalised path in `node`; fails on the node's line when it is not one.
ImagePath imagePath(const YamlReader& node) {
  auto p = normalizeImagePath(scalar(node));
  if (!p.error.empty()) node.fail(p.error);
  return p;
}

std::string requireAbsolutePath(const YamlReader& parent, std::string_view key) {
  return imagePath(parent.require(key)).path;
}

std::string sha256Field(const YamlReader& parent, std::string_view key) {
  auto node = parent.at(key);
  if (node.isNull()) return {};
  auto v = scalar(node);
  std::string lower;
  for (char c : v)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower.starts_with("sha256:")) lower.erase(0, 7);
  if (!isHex64(lower)) node.fail("expected a SHA-256 as 64 hex digits, got '" + v + "'");
  return lower;
}

// Exactly one of the given keys; returns the one present.
std::string exactlyOne(const YamlReader& r, std::initializer_list<std::string_view> keys) {
  std::vector<std::string> present;
  for (auto k : keys)
    if (r.has(k)) present.emplace_back(k);
  std::string list;
  for (auto k : keys)
    list += (list.empty() ? "" : ", ") + std::string(k);
  if (present.empty()) r.fail("needs one of: " + list);
  if (present.size() > 1)
    r.fail("has both '" + present[0] + "' and '" + present[1] + "'; use exactly one of: " + list);
  return present[0];
}

// content/source/url (+ sha256) for files; run/source/url for scripts; key/key_file/key_url.
// Files travel with the definition (its bundle): a path beside it, never one on the host.
std::string bundlePathField(const YamlReader& node) {
  auto text = scalar(node);
  auto norm = normaliseBundlePath(text);
  if (!norm)
    node.fail("'" + text +
              "' must be a relative path beside the definition (plain names, no '..'); it is "
              "sent with the job, so a definition never names a file on the build host");
  return *norm;
}

ContentSource parseContent(const YamlReader& r, std::string_view inlineKey,
                           std::string_view fileKey, std::string_view urlKey,
                           std::string_view shaKey) {
  auto which = exactlyOne(r, {inlineKey, fileKey, urlKey});
  ContentSource c;
  auto node = r.at(which);
  c.text = scalar(node);
  if (which == inlineKey) {
    c.kind = ContentSource::Kind::inline_;
    if (r.has(shaKey))
      r.at(shaKey).fail("only applies to '" + std::string(fileKey) + "' or '" +
                        std::string(urlKey) + "'");
  } else if (which == fileKey) {
    c.kind = ContentSource::Kind::file;
    c.text = bundlePathField(node);
    c.sha256 = sha256Field(r, shaKey);
  } else {
    c.kind = ContentSource::Kind::url;
    if (!isHttpUrl(c.text)) node.fail("expected an http:// or https:// URL, got '" + c.text + "'");
    c.sha256 = sha256Field(r, shaKey);
  }
  return c;
}

// ---- sections ---------------------------------------------------------------------------------

DiskPacking parseDiskPacking(const YamlReader& b) {
  DiskPacking d;
  if (auto p = b.at("packing"); !p.isNull()) {
    const auto v = scalar(p);
    for (auto k : {BasePacking::none, BasePacking::xz, BasePacking::zstd, BasePacking::gzip,
                   BasePacking::vagrantBox})
      if (v == toString(k)) d.packing = k;
    if (!d.packing) p.fail("must be none, xz, zstd, gzip or vagrant-box, got '" + v + "'");
  }
  if (auto f = b.at("format"); !f.isNull()) {
    d.format = scalar(f);
    if (std::find(std::begin(kDiskBaseFormats), std::end(kDiskBaseFormats), d.format) ==
        std::end(kDiskBaseFormats))
      f.fail("must be qcow2, raw, vmdk, vdi, vhdx or vpc (VHD), got '" + d.format + "'");
  }
  return d;
}

// A path resolved at the build agent beneath its configured base_dirs: ".." could climb out.
std::string baseDirsPath(const YamlReader& node, std::string path) {
  if (path.empty()) node.fail("must not be empty");
  for (std::string_view rest = path; !rest.empty();) {
    auto slash = rest.find('/');
    if (rest.substr(0, slash) == "..") node.fail("must not contain '..', got '" + path + "'");
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return path;
}

std::string baseDirsPath(const YamlReader& node) {
  return baseDirsPath(node, scalar(node));
}

std::string baseUrl(const YamlReader& node) {
  std::string url = scalar(node);
  if (!isHttpUrl(url)) node.fail("expected an http:// or https:// URL, got '" + url + "'");
  return url;
}

void requireBaseSha256(const YamlReader& b) {
  if (!b.has("sha256"))
    b.fail(
        "missing required field 'sha256' (a downloaded base must be verified; the distribution "
        "publishes it in SHA256SUMS next to the image)");
}

// The keys every base made from a tree takes: how the tree becomes a disk.
TreeDiskSpec parseTreeDisk(const YamlReader& d) {
  TreeDiskSpec t;
  t.packages = checkedList(d.at("packages"), isPackageName, "package name");
  if (auto s = d.at("size"); !s.isNull()) {
    t.size = s.asSize();
    if (t.size < (1ull << 30)) s.fail("must be at least 1G (kernel, systemd, cloud-init)");
  }
  if (auto l = d.at("root_label"); !l.isNull()) {
    t.rootLabel = scalar(l);
    if (t.rootLabel.empty() || t.rootLabel.size() > 16)
      l.fail("an ext4 label has 1 to 16 characters");
  }
  if (auto bl = d.at("bootloader"); !bl.isNull()) {
    t.bootloader = scalar(bl);
    if (t.bootloader != "grub-pc" && t.bootloader != "none")
      bl.fail("must be grub-pc or none, got '" + t.bootloader + "'");
  }
  if (auto kc = d.at("kernel_cmdline"); !kc.isNull()) t.kernelCmdline = scalar(kc);
  return t;
}

// `path:` or `url:` of a rootfs or oci base, with its sha256.
BaseFile parseBaseFile(const YamlReader& d) {
  BaseFile f;
  auto which = exactlyOne(d, {"path", "url"});
  if (which == "path") {
    f.path = baseDirsPath(d.at("path"));
  } else {
    f.url = baseUrl(d.at("url"));
    requireBaseSha256(d);
  }
  f.sha256 = sha256Field(d, "sha256");
  return f;
}

DebootstrapBase parseDebootstrap(const YamlReader& d) {
  if (!d.isMap()) d.fail("expected a mapping (suite, mirror, variant, components, packages, ...)");
  DebootstrapBase db;
  db.suite = scalar(d.require("suite"));
  if (!isSimpleName(db.suite)) d.at("suite").fail("'" + db.suite + "' is not a suite name");
  if (auto m = d.at("mirror"); !m.isNull()) {
    db.mirror = scalar(m);
    if (!isHttpUrl(db.mirror) && !db.mirror.starts_with("file:/"))
      m.fail("expected an http(s):// or file:/ mirror URL, got '" + db.mirror + "'");
    // debootstrap's first stage reads a file: mirror as host root: like a `path:` base it lies
    // beneath the agent's base_dirs, which the agent checks; ".." could climb out of them.
    if (db.mirror.starts_with("file:/")) baseDirsPath(m, db.mirror.substr(5));
  }
  if (auto v = d.at("variant"); !v.isNull()) {
    db.variant = scalar(v);
    if (db.variant != "minbase" && db.variant != "buildd" && db.variant != "default")
      v.fail("must be minbase, buildd or default, got '" + db.variant + "'");
  }
  if (auto c = d.at("components"); !c.isNull())
    db.components = checkedList(c, isSimpleName, "component");
  // Read by debootstrap's first stage as host root: beneath the agent's base_dirs, as `path:`.
  if (auto k = d.at("keyring"); !k.isNull()) db.keyring = baseDirsPath(k);
  db.tree = parseTreeDisk(d);
  d.rejectUnknownKeys();
  return db;
}

RootfsBase parseRootfs(const YamlReader& d) {
  if (!d.isMap()) d.fail("expected a mapping (path or url, sha256, size, packages, ...)");
  RootfsBase r;
  r.file = parseBaseFile(d);
  r.tree = parseTreeDisk(d);
  d.rejectUnknownKeys();
  return r;
}

OciBase parseOci(const YamlReader& d) {
  if (!d.isMap()) d.fail("expected a mapping (path, url or registry, sha256, size, ...)");
  OciBase o;
  if (exactlyOne(d, {"path", "url", "registry"}) == "registry") {
    auto r = d.at("registry");
    o.registry = scalar(r);
    // host[:port]/repository[:tag], as skopeo's docker:// takes it; the digest is sha256:.
    static const std::regex refRe(
        "[A-Za-z0-9.-]+(:[0-9]{1,5})?(/"
        "[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?");
    if (!std::regex_match(o.registry, refRe))
      r.fail("'" + o.registry +
             "' is not a registry image reference (host[:port]/repository[:tag], no scheme, the "
             "digest in sha256:)");
    if (!d.has("sha256"))
      d.fail(
          "missing required field 'sha256' (a registry tag moves; pin the image by its digest, "
          "which `skopeo inspect docker://" +
          o.registry + "` shows)");
    o.file.sha256 = sha256Field(d, "sha256");
    for (const char* k : {"format", "ref"})
      if (d.has(k)) d.at(k).fail("does not apply to a registry image");
  } else {
    o.file = parseBaseFile(d);
  }
  if (auto f = d.at("format"); !f.isNull()) {
    const auto v = scalar(f);
    for (auto k : {OciFormat::layout, OciFormat::ociArchive, OciFormat::dockerArchive})
      if (v == toString(k)) o.format = k;
    if (!o.format) f.fail("must be layout, oci-archive or docker-archive, got '" + v + "'");
    if (*o.format == OciFormat::layout && !o.file.url.empty())
      f.fail("a layout is a directory; fetch an oci-archive by url instead");
  }
  if (auto r = d.at("ref"); !r.isNull()) {
    o.ref = scalar(r);
    // skopeo's reference syntax: a layout's tag, an archive's name:tag or index.
    static const std::regex refRe("[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}");
    if (!std::regex_match(o.ref, refRe)) r.fail("'" + o.ref + "' is not an image reference");
  }
  o.tree = parseTreeDisk(d);
  d.rejectUnknownKeys();
  return o;
}

BaseSpec parseBase(const YamlReader& doc) {
  auto b = doc.require("base");
  if (!b.isMap()) b.fail("expected a mapping with one of: url, path, debootstrap, rootfs, oci");
  auto which = exactlyOne(b, {"url", "path", "debootstrap", "rootfs", "oci"});
  BaseSpec out;
  if (which == "url") {
    UrlBase u;
    u.url = baseUrl(b.at("url"));
    requireBaseSha256(b);
    u.sha256 = sha256Field(b, "sha256");
    u.disk = parseDiskPacking(b);
    out = u;
  } else if (which == "path") {
    PathBase p;
    p.path = baseDirsPath(b.at("path"));
    p.sha256 = sha256Field(b, "sha256");
    p.disk = parseDiskPacking(b);
    out = p;
  } else {
    // A tree base says everything inside its own mapping.
    for (const char* k : {"sha256", "packing", "format"})
      if (b.has(k))
        b.at(k).fail("does not apply to a " + which + " base" +
                     (which == "debootstrap" ? "" : " (put it inside " + which + ":)"));
    if (which == "debootstrap")
      out = parseDebootstrap(b.at("debootstrap"));
    else if (which == "rootfs")
      out = parseRootfs(b.at("rootfs"));
    else
      out = parseOci(b.at("oci"));
  }
  b.rejectUnknownKeys();
  return out;
}

Compression parseCompression(const YamlReader& node) {
  auto v = scalar(node);
  if (v == "zlib") return Compression::zlib;
  if (v == "zstd") return Compression::zstd;
  if (v == "none") return Compression::none;
  node.fail("must be zlib, zstd or none, got '" + v + "'");
}

DiskSpec parseDisk(const YamlReader& doc) {
  DiskSpec d;
  auto n = doc.at("disk");
  if (n.isNull()) return d;
  if (auto s = n.at("size"); !s.isNull()) {
    d.size = s.asSize();
    if (*d.size < (512ull << 20)) s.fail("must be at least 512M");
    if (*d.size > (16ull << 40)) s.fail("must be at most 16T");
  }
  if (auto l = n.at("root_label"); !l.isNull()) d.rootLabel = scalar(l);
  if (auto c = n.at("compression"); !c.isNull()) d.compression = parseCompression(c);
  n.rejectUnknownKeys();
  return d;
}

void parseStanza(const YamlReader& s, std::vector<std::string>& types,
                 std::vector<std::string>& uris, std::vector<std::string>& suites,
                 std::vector<std::string>& components, std::vector<std::string>& architectures) {
  if (auto t = s.at("types"); !t.isNull()) {
    types = checkedList(
        t, [](std::string_view v) { return v == "deb" || v == "deb-src"; },
        "type (deb or deb-src)");
  }
  uris = checkedList(s.require("uris"), isAptUri, "apt URI");
  if (uris.empty()) s.at("uris").fail("needs at least one URI");
  suites = checkedList(
      s.require("suites"),
      [](std::string_view v) {
        return allOf(
            v, [](char c) { return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '/'; });
      },
      "suite");
  if (suites.empty()) s.at("suites").fail("needs at least one suite");
  components = checkedList(s.at("components"), isSimpleName, "component");
  // A suite ending in '/' is a flat repository and takes no components; everything else needs some.
  bool flat = std::all_of(suites.begin(), suites.end(),
                          [](const std::string& x) { return x.ends_with("/"); });
  if (!flat && components.empty()) s.require("components");
  architectures = checkedList(s.at("architectures"), isSimpleName, "architecture");
}

AptSource parseAptSource(const YamlReader& s) {
  AptSource a;
  a.name = scalar(s.require("name"));
  if (!isSimpleName(a.name)) s.at("name").fail("'" + a.name + "' is not a simple file name");
  parseStanza(s, a.types, a.uris, a.suites, a.components, a.architectures);
  if (auto sb = s.at("signed_by"); !sb.isNull()) {
    a.signedBy = imagePath(sb).path;
  }
  s.rejectUnknownKeys();
  return a;
}

MirrorSpec parseMirrors(const YamlReader& doc) {
  MirrorSpec m;
  auto n = doc.at("mirrors");
  if (n.isNull()) return m;
  if (auto apt = n.at("apt"); !apt.isNull()) {
    AptMirrors a;
    std::set<std::string> names;
    for (const auto& s : apt.at("sources").items()) {
      a.sources.push_back(parseAptSource(s));
      if (!names.insert(a.sources.back().name).second)
        s.at("name").fail("duplicate source name '" + a.sources.back().name + "'");
    }
    a.removeLegacySourcesList = apt.get("remove_legacy_sources_list", a.removeLegacySourcesList);
    if (auto p = apt.at("proxy"); !p.isNull()) {
      a.proxy = scalar(p);
      if (!isHttpUrl(a.proxy))
        p.fail("expected an http:// or https:// proxy URL, got '" + a.proxy + "'");
    }
    if (a.sources.empty() && a.removeLegacySourcesList)
      apt.fail("removes the legacy sources.list but defines no 'sources' to replace it");
    apt.rejectUnknownKeys();
    m.apt = a;
  }
  if (auto docker = n.at("docker"); !docker.isNull()) {
    DockerMirrors d;
    d.registryMirrors = checkedList(
        docker.at("registry_mirrors"), [](std::string_view v) { return isHttpUrl(v); },
        "registry mirror URL (http:// or https://)");
    d.insecureRegistries = nonEmptyList(docker.at("insecure_registries"), "registry");
    if (d.registryMirrors.empty() && d.insecureRegistries.empty())
      docker.fail("needs registry_mirrors or insecure_registries");
    docker.rejectUnknownKeys();
    m.docker = d;
  }
  if (auto ctd = n.at("containerd"); !ctd.isNull()) {
    ContainerdMirrors c;
    if (auto cp = ctd.at("config_path"); !cp.isNull())
      c.configPath = requireAbsolutePath(ctd, "config_path");
    std::set<std::string> hosts;
    for (const auto& r : ctd.require("registries").items()) {
      ContainerdRegistry reg;
      reg.host = scalar(r.require("host"));
      if (reg.host.empty() || reg.host.find('/') != std::string::npos ||
          reg.host.find("..") != std::string::npos)
        r.at("host").fail("expected a registry host name (docker.io, registry.k8s.io:443), got '" +
                          reg.host + "'");
      if (!hosts.insert(reg.host).second)
        r.at("host").fail("duplicate registry '" + reg.host + "'");
      if (auto sv = r.at("server"); !sv.isNull()) {
        reg.server = scalar(sv);
        if (!isHttpUrl(reg.server)) sv.fail("expected an http:// or https:// URL");
      }
      for (const auto& mi : r.require("mirrors").items()) {
        ContainerdMirror cm;
        cm.url = scalar(mi.require("url"));
        if (!isHttpUrl(cm.url))
          mi.at("url").fail("expected an http:// or https:// URL, got '" + cm.url + "'");
        if (auto caps = mi.at("capabilities"); !caps.isNull())
          cm.capabilities = checkedList(
              caps, [](std::string_view v) { return v == "pull" || v == "resolve" || v == "push"; },
              "capability (pull, resolve or push)");
        cm.skipVerify = mi.get("skip_verify", false);
        cm.overridePath = mi.get("override_path", false);
        mi.rejectUnknownKeys();
        reg.mirrors.push_back(cm);
      }
      if (reg.mirrors.empty()) r.at("mirrors").fail("needs at least one mirror");
      r.rejectUnknownKeys();
      c.registries.push_back(reg);
    }
    ctd.rejectUnknownKeys();
    m.containerd = c;
  }
  n.rejectUnknownKeys();
  return m;
}

std::vector<RepositorySpec> parseRepositories(const YamlReader& doc, const MirrorSpec& mirrors) {
  std::vector<RepositorySpec> out;
  std::set<std::string> names;
  if (mirrors.apt)
    for (const auto& s : mirrors.apt->sources)
      names.insert(s.name);
  for (const auto& r : doc.at("repositories").items()) {
    RepositorySpec repo;
    repo.name = scalar(r.require("name"));
    if (!isSimpleName(repo.name))
      r.at("name").fail("'" + repo.name + "' is not a simple file name");
    if (!names.insert(repo.name).second)
      r.at("name").fail("'" + repo.name +
                        "' is already used by another repository or mirror source");
    parseStanza(r, repo.types, repo.uris, repo.suites, repo.components, repo.architectures);
    repo.key = parseContent(r, "key", "key_file", "key_url", "key_sha256");
    r.rejectUnknownKeys();
    out.push_back(repo);
  }
  return out;
}

PackageSpec parsePackages(const YamlReader& doc) {
  PackageSpec p;
  auto n = doc.at("packages");
  if (n.isNull()) return p;
  p.update = n.get("update", p.update);
  p.upgrade = n.get("upgrade", p.upgrade);
  p.installRecommends = n.get("install_recommends", p.installRecommends);
  p.install = checkedList(n.at("install"), isPackageName, "package name");
  p.remove = checkedList(n.at("remove"), isPackageName, "package name");
  std::set<std::string> inst(p.install.begin(), p.install.end());
  auto removeNode = n.at("remove");
  auto removes = removeNode.isSequence() ? removeNode.items() : std::vector<YamlReader>{};
  for (size_t i = 0; i < p.remove.size(); ++i) {
    if (inst.count(p.remove[i]))
      (i < removes.size() ? removes[i] : removeNode)
          .fail("'" + p.remove[i] + "' is both installed and removed");
  }
  n.rejectUnknownKeys();
  return p;
}

unsigned parseMode(const YamlReader& node) {
  auto v = scalar(node);
  std::string digits = v.starts_with("0o") ? v.substr(2) : v;
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; }))
    node.fail("expected an octal mode such as \"0644\", got '" + v + "'");
  unsigned mode = static_cast<unsigned>(std::stoul(digits, nullptr, 8));
  if (mode > 07777) node.fail("mode out of range: '" + v + "'");
  return mode;
}

std::vector<FileSpec> parseFiles(const YamlReader& doc) {
  std::vector<FileSpec> out;
  std::set<std::string> paths;
  for (const auto& f : doc.at("files").items()) {
    FileSpec fs;
    auto path = imagePath(f.require("path"));
    fs.path = path.path;
    if (path.namesDirectory) f.at("path").fail("names a directory; give the file's path");
    // These are the build's API filesystems, not the image: a write there would land in the
    // agent's kernel (/proc/sys) or vanish with the build (/dev, /run).
    for (const char* api : {"/proc", "/sys", "/dev", "/run"})
      if (isAtOrUnder(fs.path, api))
        f.at("path").fail("'" + fs.path + "' is under " + api + ", which is not part of the image");
    if (!paths.insert(fs.path).second) f.at("path").fail("'" + fs.path + "' is written twice");
    fs.content = parseContent(f, "content", "source", "url", "sha256");
    if (auto m = f.at("mode"); !m.isNull()) fs.mode = parseMode(m);
    if (auto o = f.at("owner"); !o.isNull()) {
      auto v = scalar(o);
      auto colon = v.find(':');
      fs.owner = v.substr(0, colon);
      fs.group = colon == std::string::npos ? fs.owner : v.substr(colon + 1);
      if (!isUserName(fs.owner) || !isUserName(fs.group))
        o.fail("expected user or user:group (names or numeric ids), got '" + v + "'");
    }
    f.rejectUnknownKeys();
    out.push_back(fs);
  }
  return out;
}

std::vector<ScriptSpec> parseScripts(const YamlReader& doc) {
  std::vector<ScriptSpec> out;
  std::set<std::string> names;
  size_t index = 0;
  for (const auto& s : doc.at("scripts").items()) {
    ScriptSpec sc;
    ++index;
    if (auto n = s.at("name"); !n.isNull()) {
      sc.name = scalar(n);
      if (!isSimpleName(sc.name)) n.fail("'" + sc.name + "' is not a simple name ([A-Za-z0-9._-])");
    } else {
      sc.name = "script-" + std::to_string(index);
    }
    if (!names.insert(sc.name).second) s.at("name").fail("duplicate script name '" + sc.name + "'");
    sc.content = parseContent(s, "run", "source", "url", "sha256");
    if (auto i = s.at("interpreter"); !i.isNull()) {
      sc.interpreter = scalar(i);
      if (!sc.interpreter.starts_with("/")) i.fail("must be an absolute path such as /bin/bash");
    }
    if (auto t = s.at("timeout"); !t.isNull()) {
      sc.timeout = t.asDuration();
      if (sc.timeout.count() <= 0) t.fail("must be positive");
    }
    for (const auto& [k, v] : s.at("env").entries()) {
      if (!isEnvName(k)) v.fail("'" + k + "' is not a valid environment variable name");
      sc.env[k] = scalar(v);
    }
    s.rejectUnknownKeys();
    out.push_back(sc);
  }
  return out;
}

// Ansible's command-line grammar for tags: no commas (the list separator), no spaces.
bool isAnsibleTag(std::string_view s) {
  return !s.empty() && s.size() <= 128 &&
         allOf(s, [](char c) { return isAlnum(c) || c == '_' || c == '-' || c == '.'; });
}

std::optional<AnsibleSpec> parseAnsible(const YamlReader& doc) {
  auto n = doc.at("ansible");
  if (n.isNull()) return std::nullopt;
  AnsibleSpec a;
  a.playbook = bundlePathField(n.require("playbook"));
  if (auto inc = n.at("include"); !inc.isNull()) {
    for (const auto& i : inc.isScalar() ? std::vector<YamlReader>{inc} : inc.items())
      a.include.push_back(bundlePathField(i));
  } else if (auto slash = a.playbook.rfind('/'); slash != std::string::npos) {
    a.include.push_back(a.playbook.substr(0, slash));  // the playbook's directory, as Packer's
  }
  if (auto rp = n.at("roles_path"); !rp.isNull())
    for (const auto& i : rp.isScalar() ? std::vector<YamlReader>{rp} : rp.items())
      a.rolesPath.push_back(bundlePathField(i));
  for (const auto& [k, v] : n.at("extra_vars").entries()) {
    if (!isEnvName(k)) v.fail("'" + k + "' is not a valid Ansible variable name");
    if (!v.isScalar()) v.fail("expected a text value (extra_vars are passed as strings)");
    a.extraVars[k] = scalar(v);
  }
  a.tags = checkedList(n.at("tags"), isAnsibleTag, "tag");
  a.skipTags = checkedList(n.at("skip_tags"), isAnsibleTag, "tag");
  if (auto t = n.at("timeout"); !t.isNull()) {
    a.timeout = t.asDuration();
    if (a.timeout.count() <= 0) t.fail("must be positive");
  }
  n.rejectUnknownKeys();
  return a;
}

// A cloud-init drop-in that is not valid YAML silently disables cloud-init's config at first
// boot; catch it here, with the line inside the definition.
void checkCloudConfig(const YamlReader& node, const std::string& text) {
  try {
    YAML::Node parsed = YAML::Load(text);
    if (!parsed.IsMap() && !parsed.IsNull())
      node.fail("must be a YAML mapping (cloud-init configuration)");
  } catch (const YAML::ParserException& e) {
    node.fail("is not valid YAML (line " + std::to_string(e.mark.line + 1) +
              " of the content): " + e.msg);
  }
}

CloudInitSpec parseCloudInit(const YamlReader& doc) {
  CloudInitSpec c;
  auto n = doc.at("cloud_init");
  if (n.isNull()) return c;
  if (auto u = n.at("default_user"); !u.isNull()) {
    if (auto nm = u.at("name"); !nm.isNull()) {
      c.defaultUserName = scalar(nm);
      if (!isUserName(c.defaultUserName))
        nm.fail("'" + c.defaultUserName + "' is not a valid user name");
    }
    if (u.has("groups") && u.has("add_groups"))
      u.fail(
          "has both 'groups' (replaces the image's list) and 'add_groups' (adds to it); use one");
    if (auto g = u.at("groups"); !g.isNull())
      c.defaultUserGroups = checkedList(g, isUserName, "group name");
    c.addGroups = checkedList(u.at("add_groups"), isUserName, "group name");
    if (auto sh = u.at("shell"); !sh.isNull()) {
      c.defaultUserShell = imagePath(sh).path;
    }
    if (auto su = u.at("sudo"); !su.isNull()) c.defaultUserSudo = scalar(su);
    u.rejectUnknownKeys();
  }
  c.datasources = checkedList(
      n.at("datasources"), [](std::string_view v) { return allOf(v, isAlnum); }, "datasource name");
  std::set<std::string> names;
  for (const auto& d : n.at("drop_ins").items()) {
    CloudInitDropIn di;
    di.name = scalar(d.require("name"));
    if (!isSimpleName(di.name) || !di.name.ends_with(".cfg"))
      d.at("name").fail("must be a file name ending in .cfg (cloud-init reads only *.cfg), got '" +
                        di.name + "'");
    if (!names.insert(di.name).second) d.at("name").fail("duplicate drop-in '" + di.name + "'");
    di.content = scalar(d.require("content"));
    checkCloudConfig(d.at("content"), di.content);
    d.rejectUnknownKeys();
    c.dropIns.push_back(di);
  }
  n.rejectUnknownKeys();
  return c;
}

ServiceSpec parseServices(const YamlReader& doc) {
  ServiceSpec s;
  auto n = doc.at("services");
  if (n.isNull()) return s;
  s.enable = checkedList(n.at("enable"), isUnitName, "systemd unit name");
  s.disable = checkedList(n.at("disable"), isUnitName, "systemd unit name");
  s.mask = checkedList(n.at("mask"), isUnitName, "systemd unit name");
  std::set<std::string> en(s.enable.begin(), s.enable.end());
  for (const auto& u : s.disable)
    if (en.count(u)) n.at("disable").fail("'" + u + "' is both enabled and disabled");
  for (const auto& u : s.mask)
    if (en.count(u)) n.at("mask").fail("'" + u + "' is both enabled and masked");
  n.rejectUnknownKeys();
  return s;
}

CleanupSpec parseCleanup(const YamlReader& doc) {
  CleanupSpec c;
  auto n = doc.at("cleanup");
  if (n.isNull()) return c;
  for (const auto& p : n.at("remove").items()) {
    auto v = imagePath(p).path;
    if (v == "/" || v == "/*") p.fail("refusing to remove the whole root filesystem");
    c.remove.push_back(v);
  }
  c.recreateJournal = n.get("recreate_journal", c.recreateJournal);
  n.rejectUnknownKeys();
  return c;
}

BootTestSpec parseBootTest(const YamlReader& bt) {
  BootTestSpec b;
  if (bt.isScalar()) {
    b.enabled = bt.as<bool>();
    return b;
  }
  b.enabled = bt.get("enabled", true);
  if (auto m = bt.at("method"); !m.isNull()) {
    auto v = scalar(m);
    if (v == "qemu")
      b.method = BootMethod::qemu;
    else if (v == "nspawn")
      b.method = BootMethod::nspawn;
    else
      m.fail("must be qemu or nspawn, got '" + v + "'");
  }
  if (auto f = bt.at("firmware"); !f.isNull()) {
    auto v = scalar(f);
    if (v == "auto")
      b.firmware = BootFirmware::auto_;
    else if (v == "bios")
      b.firmware = BootFirmware::bios;
    else if (v == "uefi")
      b.firmware = BootFirmware::uefi;
    else if (v == "both")
      b.firmware = BootFirmware::both;
    else
      f.fail("must be auto, bios, uefi or both, got '" + v + "'");
  }
  if (auto t = bt.at("timeout"); !t.isNull()) {
    b.timeout = t.asDuration();
    if (b.timeout.count() <= 0) t.fail("must be positive");
  }
  if (auto m = bt.at("memory"); !m.isNull()) {
    b.memory = m.asSize();
    if (b.memory < (256ull << 20)) m.fail("must be at least 256M");
  }
  if (auto d = bt.at("disk_size"); !d.isNull()) {
    b.diskSize = d.asSize();
    if (*b.diskSize < (1ull << 30)) d.fail("must be at least 1G");
  }
  if (auto r = bt.at("resolve"); !r.isNull()) {
    b.resolve = scalar(r);
    if (!allOf(b.resolve, [](char c) { return isAlnum(c) || c == '.' || c == '-'; }))
      r.fail("must be a host name, got '" + b.resolve + "'");
  }
  if (auto o = bt.at("outputs"); !o.isNull()) {
    b.outputs = parseOutputs(o, {});
    for (auto kind : b.outputs)
      if (kind == OutputKind::raw) o.fail("a raw is the qcow2's bytes: boot it as qcow2");
    if (b.method == BootMethod::nspawn && !lists(b.outputs, OutputKind::qcow2))
      o.fail("method nspawn boots the image's root, not an ISO: nothing would be booted");
  }
  if (auto e = bt.at("expect"); !e.isNull())
    e.fail(
        "no longer used: the acceptance boot checks from inside the guest instead of waiting "
        "for a console prompt (remove it; add your own checks under 'checks')");
  std::set<std::string> names;
  for (const auto& c : bt.at("checks").items()) {
    BootCheck check;
    check.name = scalar(c.require("name"));
    if (!isSimpleName(check.name))
      c.at("name").fail("must be a simple name ([A-Za-z0-9._-]), got '" + check.name + "'");
    if (!names.insert(check.name).second) c.at("name").fail("duplicate check '" + check.name + "'");
    check.run = scalar(c.require("run"));
    if (check.run.empty()) c.at("run").fail("must not be empty");
    check.exitCode = c.get("exit_code", check.exitCode);
    if (check.exitCode < 0 || check.exitCode > 255) c.at("exit_code").fail("must be 0..255");
    if (auto o = c.at("output"); !o.isNull()) {
      check.output = scalar(o);
      try {
        std::regex re(check.output, std::regex::ECMAScript);
      } catch (const std::regex_error& err) {
        o.fail(std::string("not a regular expression: ") + err.what());
      }
    }
    if (auto t = c.at("timeout"); !t.isNull()) {
      check.timeout = t.asDuration();
      if (check.timeout.count() <= 0) t.fail("must be positive");
    }
    check.nspawn = c.get("nspawn", check.nspawn);
    c.rejectUnknownKeys();
    b.checks.push_back(check);
  }
  bt.rejectUnknownKeys();
  return b;
}

ValidationSpec parseValidation(const YamlReader& doc) {
  ValidationSpec v;
  auto n = doc.at("validation");
  if (n.isNull()) return v;
  if (auto bt = n.at("boot_test"); !bt.isNull()) v.bootTest = parseBootTest(bt);
  v.expectPackages = checkedList(n.at("expect_packages"), isPackageName, "package name");
  v.expectServices = checkedList(n.at("expect_services"), isUnitName, "systemd unit name");
  v.requireCloudInit = n.get("require_cloud_init", v.requireCloudInit);
  v.requireQemuGuestAgent = n.get("require_qemu_guest_agent", v.requireQemuGuestAgent);
  v.requireSshd = n.get("require_sshd", v.requireSshd);
  n.rejectUnknownKeys();
  return v;
}

std::map<std::string, std::string> parseProperties(const YamlReader& n) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : n.entries()) {
    if (k.empty() || k.size() > 255) v.fail("property names have 1 to 255 characters");
    if (auto problem = reservedPropertyProblem(k)) v.fail(*problem);
    if (!v.isScalar() && !v.isNull())
      v.fail("must be a single value (it becomes a string property)");
    std::string value = v.isNull() ? "" : v.as<std::string>();
    if (value.size() > 255) v.fail("Glance property values are limited to 255 characters");
    out[k] = value;
  }
  return out;
}

}  // namespace

GlanceSpec parseGlance(const YamlReader& doc) {
  GlanceSpec g;
  auto n = doc.at("glance");
  if (n.isNull()) return g;
  if (auto d = n.at("display_name"); !d.isNull()) {
    g.displayName = scalar(d);
    if (g.displayName.empty() || g.displayName.size() > 255)
      d.fail("must have 1 to 255 characters");
  }
  if (auto v = n.at("visibility"); !v.isNull()) {
    auto s = scalar(v);
    auto parsed = parseVisibility(s);
    if (!parsed) v.fail("must be private, shared, community or public, got '" + s + "'");
    g.visibility = *parsed;
  }
  if (auto m = n.at("min_disk"); !m.isNull()) {
    g.minDiskGiB = m.as<std::uint64_t>();
    if (*g.minDiskGiB == 0) m.fail("must be at least 1 (GiB)");
  }
  if (auto m = n.at("min_ram"); !m.isNull()) g.minRamMiB = m.as<std::uint64_t>();
  g.tags = checkedList(
      n.at("tags"), [](std::string_view t) { return !t.empty() && t.size() <= 255; },
      "tag (1 to 255 characters)");
  g.protected_ = n.get("protected", false);
  if (auto o = n.at("older_versions"); !o.isNull()) {
    auto s = scalar(o);
    g.olderVersions = parseOlderVersions(s);
    if (!g.olderVersions) o.fail("must be keep, hide or rename, got '" + s + "'");
  }
  g.metadata = parseProperties(n.at("metadata"));
  g.properties = parseProperties(n.at("properties"));
  n.rejectUnknownKeys();
  return g;
}

Network parseNetwork(const YamlReader& doc) {
  auto n = doc.at("network");
  if (n.isNull()) return Network::host;
  auto v = scalar(n);
  if (v == "host") return Network::host;
  if (v == "none") return Network::none;
  if (v == "proxy") return Network::proxy;
  n.fail("must be host, none or proxy, got '" + v + "'");
}

ImageDefinition parseDefinition(std::string_view yamlText, const std::string& sourceName) {
  refuseAnchorsAndAliases(yamlText, sourceName);
  return parseDefinition(YamlReader::fromString(yamlText, sourceName));
}

ImageDefinition parseDefinition(const YamlReader& doc) {
  const std::string& sourceName = doc.source();
  if (!doc.isMap()) doc.fail("an image definition must be a YAML mapping (name, base, ...)");
  // Merged away by MergedDefinition; still here means the layers were skipped, which must not
  // build an image without them.
  if (auto e = doc.at("extends"); !e.isNull())
    e.fail("this definition extends another and was read without its layers (read its bundle)");
  ImageDefinition def;
  def.sourceName = sourceName;

  auto nameNode = doc.require("name");
  def.name = scalar(nameNode);
  if (!isImageName(def.name) || def.name.size() > 128)
    nameNode.fail(
        "'" + def.name +
        "' is not a valid image name (lowercase letters, digits, '.', '_', '-'; at most 128)");
  if (auto v = doc.at("version"); !v.isNull()) {
    def.version = scalar(v);
    if (!isVersion(def.version) || def.version.size() > 64)
      v.fail("'" + def.version +
             "' is not a valid version (letters, digits, '.', '_', '-', '+', '~'; at most 64)");
  }
  if (auto d = doc.at("description"); !d.isNull()) def.description = scalar(d);

  def.base = parseBase(doc);
  def.disk = parseDisk(doc);
  if (const auto* tree = treeDiskOf(def.base)) {
    if (def.disk.rootLabel.empty()) def.disk.rootLabel = tree->rootLabel;
    if (def.disk.size && *def.disk.size < tree->size)
      doc.at("disk").at("size").fail("is smaller than the " + std::string(baseKind(def.base)) +
                                     " base's disk (" + formatBytes(tree->size) +
                                     "); disks only grow");
  }
  def.mirrors = parseMirrors(doc);
  def.repositories = parseRepositories(doc, def.mirrors);
  def.packages = parsePackages(doc);
  def.files = parseFiles(doc);
  def.scripts = parseScripts(doc);
  def.ansible = parseAnsible(doc);
  def.cloudInit = parseCloudInit(doc);
  def.services = parseServices(doc);
  def.cleanup = parseCleanup(doc);
  def.validation = parseValidation(doc);
  def.glance = parseGlance(doc);
  def.network = parseNetwork(doc);
  def.outputs = parseOutputs(doc.at("outputs"), {OutputKind::qcow2});
  for (auto kind : def.validation.bootTest.outputs)
    if (!lists(def.outputs, kind))
      doc.at("validation")
          .at("boot_test")
          .at("outputs")
          .fail("boots " + std::string(toString(kind)) + ", which is not among the outputs (" +
                namesOf(def.outputs) + ")");

  // Nova refuses to boot an image on a flavor whose disk is smaller than the image's virtual
  // size, so a min_disk below the disk size only advertises flavors that cannot work.
  if (def.glance.minDiskGiB && def.disk.size && (*def.glance.minDiskGiB << 30) < *def.disk.size)
    doc.at("glance")
        .at("min_disk")
        .fail(std::to_string(*def.glance.minDiskGiB) + " GiB is smaller than disk.size (" +
              formatBytes(*def.disk.size) + "); instances on such flavors could not boot");

  doc.rejectUnknownKeys();
  return def;
}

ImageDefinition loadDefinitionFile(const std::filesystem::path& path) {
  const auto dir = std::filesystem::absolute(path).parent_path();
  try {
    auto merged = MergedDefinition::merge(
        path.filename().string(), layersBeneath(dir, BundleLimits{}.fileBytes), path.string());
    return parseDefinition(merged.reader());
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    throw YamlError(e.what());
  }
}

std::string_view toString(Compression c) {
  switch (c) {
    case Compression::zlib:
      return "zlib";
    case Compression::zstd:
      return "zstd";
    case Compression::none:
      return "none";
  }
  return "?";
}

std::string_view toString(Visibility v) {
  switch (v) {
    case Visibility::private_:
      return "private";
    case Visibility::shared:
      return "shared";
    case Visibility::community:
      return "community";
    case Visibility::public_:
      return "public";
  }
  return "?";
}

std::string_view toString(OlderVersions o) {
  switch (o) {
    case OlderVersions::keep:
      return "keep";
    case OlderVersions::hide:
      return "hide";
    case OlderVersions::rename:
      return "rename";
  }
  return "?";
}

std::string_view toString(Network n) {
  switch (n) {
    case Network::host:
      return "host";
    case Network::none:
      return "none";
    case Network::proxy:
      return "proxy";
  }
  return "?";
}

std::string_view toString(BootMethod m) {
  return m == BootMethod::nspawn ? "nspawn" : "qemu";
}

std::string_view toString(BootFirmware f) {
  switch (f) {
    case BootFirmware::auto_:
      return "auto";
    case BootFirmware::bios:
      return "bios";
    case BootFirmware::uefi:
      return "uefi";
    case BootFirmware::both:
      return "both";
  }
  return "?";
}

std::string_view toString(BasePacking p) {
  switch (p) {
    case BasePacking::none:
      return "none";
    case BasePacking::xz:
      return "xz";
    case BasePacking::zstd:
      return "zstd";
    case BasePacking::gzip:
      return "gzip";
    case BasePacking::vagrantBox:
      return "vagrant-box";
  }
  return "none";
}

BasePacking packingOf(std::optional<BasePacking> given, std::string_view name) {
  if (given) return *given;
  // A URL's query string is not part of the file's name.
  name = name.substr(0, name.find_first_of("?#"));
  if (name.ends_with(".xz")) return BasePacking::xz;
  if (name.ends_with(".zst")) return BasePacking::zstd;
  if (name.ends_with(".gz")) return BasePacking::gzip;
  if (name.ends_with(".box")) return BasePacking::vagrantBox;
  return BasePacking::none;
}

std::string_view baseKind(const BaseSpec& base) {
  struct Kind {
    std::string_view operator()(const PathBase&) const { return "path"; }
    std::string_view operator()(const UrlBase&) const { return "url"; }
    std::string_view operator()(const DebootstrapBase&) const { return "debootstrap"; }
    std::string_view operator()(const RootfsBase&) const { return "rootfs"; }
    std::string_view operator()(const OciBase&) const { return "oci"; }
  };
  return std::visit(Kind{}, base);
}

const TreeDiskSpec* treeDiskOf(const BaseSpec& base) {
  if (auto* d = std::get_if<DebootstrapBase>(&base)) return &d->tree;
  if (auto* r = std::get_if<RootfsBase>(&base)) return &r->tree;
  if (auto* o = std::get_if<OciBase>(&base)) return &o->tree;
  return nullptr;
}

std::string_view toString(OciFormat f) {
  switch (f) {
    case OciFormat::layout:
      return "layout";
    case OciFormat::ociArchive:
      return "oci-archive";
    case OciFormat::dockerArchive:
      return "docker-archive";
  }
  return "?";
}

std::string versionAt(const ImageDefinition& def, std::chrono::system_clock::time_point when) {
  return def.version.empty() ? deriveVersion(when) : def.version;
}

std::string deriveVersion(std::chrono::system_clock::time_point when) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y.%m.%d-%H%M%S", &tm);
  return buf;
}

std::vector<OutputKind> bootedOutputs(const ImageDefinition& def) {
  if (!def.validation.bootTest.outputs.empty()) return def.validation.bootTest.outputs;
  std::vector<OutputKind> out;
  for (auto kind : def.outputs)
    if (kind != OutputKind::raw) out.push_back(kind);
  return out;
}

}  // namespace imgpipe::definition
