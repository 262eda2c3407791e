#pragma once

#include <filesystem>
#include <string>

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

// The format of an OCI base: as given, a directory is a layout, and a tar is told apart by
// its members (oci-layout: an oci-archive; manifest.json: a docker-archive).
definition::OciFormat ociFormatOf(const ExecContext& exec, const definition::OciBase& spec,
                                  const std::filesystem::path& file);

// An OCI image's layers, whiteouts applied, as a root tree: skopeo copies it (any of its
// transports, every blob checked against its digest) into a layout under `scratch`, and umoci
// unpacks that (whiteouts and opaque directories, owners, xattrs; symlinks resolved inside the
// tree only). For a layout, `expectedManifest` (hex, may be empty) pins the image manifest's
// digest. Returns the manifest's digest (hex).
std::string unpackOciImage(const ExecContext& exec, const definition::OciBase& spec,
                           definition::OciFormat format, const std::filesystem::path& file,
                           const std::string& expectedManifest,
                           const std::filesystem::path& scratch,
                           const std::filesystem::path& rootfs, BuildLog& log);

}  // namespace imgpipe::build
