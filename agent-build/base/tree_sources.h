#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "agent-build/config/build_proxy.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Root trees from files nobody at this agent wrote. Both write into an empty `rootfs` and leave
// no device node in it (bootable_tree.h: removeDeviceNodes).

// A root filesystem tarball (tar, or tar.gz/.xz/.zst, told apart by content), unpacked with GNU
// tar as root keeping owners, modes and xattrs. GNU tar strips leading '/', skips members whose
// names hold '..', and creates symlinks that point outside (absolute or with '..') only after
// every file is written, so no member is written through one. Returns what it unpacked, for
// the log.
std::string unpackRootfsTarball(const ExecContext& exec, const std::filesystem::path& tarball,
                                const std::filesystem::path& rootfs);

// The identity of an OCI image layout directory before it is copied: its index.json's digest
// (every blob it leads to is named by its digest). Refuses a layout holding anything but plain
// files and directories (a blob that is a symlink would read a host file).
std::string ociLayoutIdentity(const std::filesystem::path& layout);

// The format of an OCI base on the agent: as given, a directory is a layout, and a tar is told
// apart by its members (oci-layout: an oci-archive; manifest.json: a docker-archive).
definition::OciFormat ociFormatOf(const ExecContext& exec, const definition::OciBase& spec,
                                  const std::filesystem::path& file);

// What skopeo copies an OCI image from. Value type.
struct OciSource {
  std::string reference;       // skopeo's: oci:DIR[:REF], docker-archive:FILE, docker://...
  std::string registriesConf;  // for docker://: registries.conf (mirrors, insecure registries)
  std::map<std::string, std::string> env;  // build.proxy, for docker://
};

// A layout, oci-archive or docker-archive on the agent.
OciSource localOciSource(definition::OciFormat format, const std::filesystem::path& file,
                         const std::string& ref);

// A registry image, pulled by its pinned digest (skopeo refuses content that does not match it)
// through the definition's registry mirrors — mirrors.docker.registry_mirrors for docker.io,
// mirrors.containerd.registries by host, http:// mirrors and mirrors.docker.insecure_registries
// without TLS — and build.proxy.
OciSource registryOciSource(const definition::OciBase& spec, const definition::MirrorSpec& mirrors,
                            const std::optional<BuildProxy>& proxy);

// registries.conf (containers-registries.conf(5), version 2) for the definition's mirrors.
std::string registriesConf(const definition::MirrorSpec& mirrors);

// An OCI image's layers, whiteouts applied, as a root tree: skopeo copies it (every blob
// checked against its digest) into a layout under `scratch`, and umoci unpacks that (whiteouts
// and opaque directories, owners, xattrs; symlinks resolved inside the tree only).
// `expectedManifest` (hex, may be empty) pins the copied image manifest's digest (a layout's).
// Returns the manifest's digest (hex).
std::string unpackOciImage(const ExecContext& exec, const OciSource& source,
                           const std::string& expectedManifest,
                           const std::filesystem::path& scratch,
                           const std::filesystem::path& rootfs, BuildLog& log);

}  // namespace imgpipe::build
