#pragma once

// The image definition: what an operator writes (YAML, see docs/image-definition.md) and what a
// build turns into a finished qcow2. Plain value types: parsed once by parseDefinition(), then
// read by the build steps, the summary printer and the Glance agent.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "definition/outputs.h"

namespace imgpipe::definition {

// ---- base -------------------------------------------------------------------------------------

// How a disk base comes packed. qemu-img reads the disk formats of kDiskBaseFormats as they are;
// a compressed raw disk (Fedora's raw.xz) or a Vagrant box is unpacked first.
enum class BasePacking { none, xz, zstd, gzip, vagrantBox };
std::string_view toString(BasePacking p);  // none, xz, zstd, gzip, vagrant-box
// The packing of a base named `name` (its path or URL), unless the definition says: .xz, .zst,
// .gz, .box.
BasePacking packingOf(std::optional<BasePacking> given, std::string_view name);
// The disk formats a base may be in, as qemu-img names them (vpc is VHD).
inline constexpr std::string_view kDiskBaseFormats[] = {"qcow2", "raw",  "vmdk",
                                                        "vdi",   "vhdx", "vpc"};

// What a disk base is, beyond where it is: both optional (`packing:`, `format:`).
struct DiskPacking {
  std::optional<BasePacking> packing;  // empty: from the name
  std::string format;                  // one of kDiskBaseFormats, or empty: probed
};

// A cloud image on the agent's disk. Its sha256 is optional (verified when given).
struct PathBase {
  std::string path;
  std::string sha256;  // lowercase hex, or empty
  DiskPacking disk;
};

// A cloud image fetched over HTTP(S): downloaded resumably, verified, cached by digest.
struct UrlBase {
  std::string url;
  std::string sha256;  // lowercase hex, required; of the file as downloaded (packed)
  DiskPacking disk;
};

// How a root tree (a debootstrap run, a root tarball, an OCI image) becomes a bootable disk laid
// out like an Ubuntu cloud image: GPT with p14 BIOS boot and p15 EFI system partition, p1 ext4
// root labelled `rootLabel`, grub for BIOS and UEFI reading one grub.cfg.
struct TreeDiskSpec {
  std::vector<std::string> packages;  // in addition to the boot set (kernel, systemd, ssh...)
  std::uint64_t size = 3ull << 30;    // virtual size of the base disk
  std::string rootLabel = "cloudimg-rootfs";
  std::string bootloader = "grub-pc";  // grub-pc | none
  std::string kernelCmdline = "console=tty0 console=ttyS0,115200";
};

// A base made on the agent with debootstrap, for sites that cannot fetch cloud images.
struct DebootstrapBase {
  std::string suite;  // bookworm
  std::string mirror = "http://deb.debian.org/debian";
  std::string variant = "minbase";
  std::vector<std::string> components{"main"};
  std::string keyring;  // debootstrap --keyring, empty: debootstrap's default
  TreeDiskSpec tree;
};

// Where the file of a tree base is: beneath the agent's base_dirs (`path`, sha256 optional) or
// fetched (`url`, sha256 required). Exactly one of path and url.
struct BaseFile {
  std::string path;
  std::string url;
  std::string sha256;  // lowercase hex, or empty
  const std::string& name() const { return url.empty() ? path : url; }
};

// A root filesystem tarball (tar, tar.gz, tar.xz, tar.zst), as Ubuntu's *-root.tar.xz.
struct RootfsBase {
  BaseFile file;
  TreeDiskSpec tree;
};

// The forms an OCI image comes in (skopeo's transports): an image layout directory, the same
// packed in a tar (oci-archive), or `docker save`'s tar (docker-archive).
enum class OciFormat { layout, ociArchive, dockerArchive };
std::string_view toString(OciFormat f);  // layout, oci-archive, docker-archive

// An OCI or Docker image whose layers (whiteouts applied) become the root tree: a file on the
// agent or fetched (`file`), or pulled from a registry (`registry`, through the definition's
// registry mirrors). A layout's sha256 is its image manifest's digest, an archive's the file's,
// a registry image's the digest it is pulled by (required: tags move).
struct OciBase {
  BaseFile file;
  std::string registry;             // host[:port]/repository[:tag], or empty
  std::optional<OciFormat> format;  // empty: a directory is a layout, a tar is probed
  std::string ref;                  // the image in a layout or archive holding several
  TreeDiskSpec tree;
  const std::string& name() const { return registry.empty() ? file.name() : registry; }
};

using BaseSpec = std::variant<PathBase, UrlBase, DebootstrapBase, RootfsBase, OciBase>;

// How a base made from a tree becomes a disk, or null for a disk base (path, url).
const TreeDiskSpec* treeDiskOf(const BaseSpec& base);

// ---- disk -------------------------------------------------------------------------------------

enum class Compression { zlib, zstd, none };

struct DiskSpec {
  std::optional<std::uint64_t> size;       // bytes; grow only; empty: keep the base's size
  std::string rootLabel;                   // hint for finding the root filesystem
  std::optional<Compression> compression;  // empty: the agent's default
};

// ---- mirrors and repositories -------------------------------------------------------------------

// One DEB822 stanza, written as /etc/apt/sources.list.d/<name>.sources.
struct AptSource {
  std::string name;
  std::vector<std::string> types{"deb"};
  std::vector<std::string> uris;
  std::vector<std::string> suites;
  std::vector<std::string> components;
  std::vector<std::string> architectures;
  std::string signedBy;  // path inside the image, or empty
};

struct AptMirrors {
  std::vector<AptSource> sources;
  bool removeLegacySourcesList = true;  // /etc/apt/sources.list
  std::string proxy;                    // Acquire::http::Proxy, or empty
};

struct DockerMirrors {
  std::vector<std::string> registryMirrors;
  std::vector<std::string> insecureRegistries;
};

struct ContainerdMirror {
  std::string url;
  std::vector<std::string> capabilities{"pull", "resolve"};
  bool skipVerify = false;
  bool overridePath = false;
};

// One /etc/containerd/certs.d/<host>/hosts.toml.
struct ContainerdRegistry {
  std::string host;    // docker.io, registry.k8s.io, ...
  std::string server;  // upstream; empty: derived from host
  std::vector<ContainerdMirror> mirrors;
};

struct ContainerdMirrors {
  std::string configPath = "/etc/containerd/certs.d";
  std::vector<ContainerdRegistry> registries;
};

struct MirrorSpec {
  std::optional<AptMirrors> apt;
  std::optional<DockerMirrors> docker;
  std::optional<ContainerdMirrors> containerd;
  bool empty() const { return !apt && !docker && !containerd; }
};

// Where bytes come from for a file, a script or a key: inline text, a file on the agent (relative
// paths are relative to the definition's directory), or a URL fetched by the agent.
struct ContentSource {
  enum class Kind { inline_, file, url } kind = Kind::inline_;
  std::string text;    // inline content, file path or URL
  std::string sha256;  // optional pin for file/url
};

struct RepositorySpec {
  std::string name;
  std::vector<std::string> types{"deb"};
  std::vector<std::string> uris;
  std::vector<std::string> suites;
  std::vector<std::string> components;
  std::vector<std::string> architectures;
  ContentSource key;  // the repository's signing key (armored or binary)
};

struct PackageSpec {
  bool update = true;
  bool upgrade = false;
  bool installRecommends = false;
  std::vector<std::string> install;
  std::vector<std::string> remove;
};

struct FileSpec {
  std::string path;  // absolute, inside the image
  ContentSource content;
  unsigned mode = 0644;
  std::string owner = "root";
  std::string group = "root";
};

struct ScriptSpec {
  std::string name;
  ContentSource content;
  std::string interpreter;  // empty: the script's #! line, else /bin/sh -e
  std::chrono::milliseconds timeout{30 * 60 * 1000};
  std::map<std::string, std::string> env;
};

// An Ansible playbook run against the image (community.general.chroot through the image
// sandbox) after the scripts. The playbook and everything under `include` travel in the bundle.
struct AnsibleSpec {
  std::string playbook;                // bundle path
  std::vector<std::string> include;    // bundle directories and files the playbook needs
  std::vector<std::string> rolesPath;  // bundle directories, ANSIBLE_ROLES_PATH
  std::map<std::string, std::string> extraVars;
  std::vector<std::string> tags, skipTags;
  std::chrono::milliseconds timeout{30 * 60 * 1000};
};

struct CloudInitDropIn {
  std::string name;  // file name in /etc/cloud/cloud.cfg.d/
  std::string content;
};

struct CloudInitSpec {
  std::string defaultUserName;
  std::optional<std::vector<std::string>> defaultUserGroups;  // replaces the image's list
  std::vector<std::string> addGroups;  // appended to the image's default_user groups
  std::string defaultUserShell;
  std::string defaultUserSudo;
  std::vector<std::string> datasources;
  std::vector<CloudInitDropIn> dropIns;
  bool empty() const {
    return defaultUserName.empty() && !defaultUserGroups && addGroups.empty() &&
           defaultUserShell.empty() && defaultUserSudo.empty() && datasources.empty() &&
           dropIns.empty();
  }
};

struct ServiceSpec {
  std::vector<std::string> enable, disable, mask;
  bool empty() const { return enable.empty() && disable.empty() && mask.empty(); }
};

struct CleanupSpec {
  std::vector<std::string> remove;  // extra absolute paths (shell globs) removed from the image
  bool recreateJournal = true;      // drop and re-create the ext4 journal before compaction
};

// A check of the definition's own, run inside the booted guest by the acceptance boot.
struct BootCheck {
  std::string name;
  std::string run;     // /bin/sh -c
  int exitCode = 0;    // expected exit code
  std::string output;  // a regular expression the output must contain, or empty
  std::chrono::milliseconds timeout{60'000};
  bool nspawn = true;  // also under method: nspawn (false: needs what a container lacks)
};

enum class BootMethod { qemu, nspawn };
// bios and uefi boot once each where the image can; auto: BIOS, plus UEFI when the image has
// an EFI system partition.
enum class BootFirmware { auto_, bios, uefi, both };

// The acceptance boot (validation.boot_test): the finished image booted as a cloud boots it,
// checked from inside (docs/build-agent.md).
struct BootTestSpec {
  bool enabled = false;
  BootMethod method = BootMethod::qemu;
  BootFirmware firmware = BootFirmware::auto_;
  std::chrono::milliseconds timeout{300'000};  // per boot: power-on to the last check
  std::uint64_t memory = 1024ull << 20;
  std::optional<std::uint64_t> diskSize;  // the instance's disk; empty: twice the image's
  std::string resolve;                    // the name looked up in the guest; empty: the mirror's
  std::vector<BootCheck> checks;
  // Which outputs are booted: qcow2 (the disk) and/or iso (the live ISO). Empty: every one of
  // them the definition's outputs list.
  std::vector<OutputKind> outputs;
};
struct ValidationSpec {
  BootTestSpec bootTest;
  std::vector<std::string> expectPackages;
  std::vector<std::string> expectServices;  // enabled
  bool requireCloudInit = true;
  bool requireQemuGuestAgent = true;
  bool requireSshd = true;
};

// ---- Glance -----------------------------------------------------------------------------------

enum class Visibility { private_, shared, community, public_ };
enum class OlderVersions { keep, hide, rename };

// The `glance:` section, as the Glance agent registers it.
struct GlanceSpec {
  std::string displayName;  // empty: "<name> <version>" (see displayNameFor)
  Visibility visibility = Visibility::private_;
  std::optional<std::uint64_t> minDiskGiB;  // empty: the disk's virtual size rounded up
  std::optional<std::uint64_t> minRamMiB;
  std::vector<std::string> tags;
  bool protected_ = false;
  std::optional<OlderVersions> olderVersions;     // unset: the Glance agent's configured default
  std::map<std::string, std::string> metadata;    // the .images.yaml `metadata:` block
  std::map<std::string, std::string> properties;  // override metadata on the same key

  std::string displayNameFor(const std::string& name, const std::string& version) const {
    return displayName.empty() ? name + " " + version : displayName;
  }
  // metadata, then properties on top: what becomes the Glance image's properties.
  std::map<std::string, std::string> allProperties() const {
    auto all = metadata;
    for (const auto& [k, v] : properties)
      all[k] = v;
    return all;
  }
};

// ---- network ----------------------------------------------------------------------------------

// Whether the commands a definition controls reach the network from inside the build sandbox:
// its scripts, and the dpkg half of the packages step (maintainer scripts). host: the build
// host's network; none: no network (apt's downloads still reach the mirror, before dpkg runs);
// proxy: nothing but the build agent's proxy (build.proxy), for every command in the image,
// apt's downloads included. imgpipe's own commands in the image never reach the network.
enum class Network { host, none, proxy };

// ---- the whole definition ---------------------------------------------------------------------

struct ImageDefinition {
  std::string sourceName;  // the file it came from, for messages
  std::string name;
  std::string version;  // empty: derived when the job is submitted (versionAt)
  std::string description;
  BaseSpec base;
  DiskSpec disk;
  MirrorSpec mirrors;
  std::vector<RepositorySpec> repositories;
  PackageSpec packages;
  std::vector<FileSpec> files;
  std::vector<ScriptSpec> scripts;
  std::optional<AnsibleSpec> ansible;
  CloudInitSpec cloudInit;
  ServiceSpec services;
  CleanupSpec cleanup;
  ValidationSpec validation;
  GlanceSpec glance;
  // What is registered in Glance at each site (a site may take fewer: topology.sites[].outputs).
  std::vector<OutputKind> outputs{OutputKind::qcow2};
  Network network = Network::host;
};

std::string_view toString(Compression c);
std::string_view toString(Visibility v);
std::string_view toString(OlderVersions o);
std::string_view toString(Network n);
std::string_view toString(BootMethod m);
std::string_view toString(BootFirmware f);
std::string_view baseKind(const BaseSpec& base);  // path, url, debootstrap, rootfs, oci

// The version used when a definition names none: the UTC time the job was submitted, as
// "YYYY.MM.DD-HHMMSS" (sorts in build order, safe in file names and Glance names).
std::string deriveVersion(std::chrono::system_clock::time_point when);
// The version a job of `def` submitted at `when` gets: the definition's own, else derived.
std::string versionAt(const ImageDefinition& def, std::chrono::system_clock::time_point when);
// The outputs the acceptance boot boots: validation.boot_test.outputs, else every bootable
// output the definition lists (qcow2, iso; a raw is the qcow2's bytes).
std::vector<OutputKind> bootedOutputs(const ImageDefinition& def);

}  // namespace imgpipe::definition
