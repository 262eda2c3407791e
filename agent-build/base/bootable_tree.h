#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/util/exec.h"
#include "agent-build/util/image_fs.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// The version of how a tree becomes a bootable disk (the boot set, the configuration, the disk
// layout): part of every made base's cache key, raised whenever any of them changes.
inline constexpr int kTreeRecipe = 4;

// The distribution of a root tree, from its /etc/os-release. Only Debian's family can be made
// bootable here (apt, grub, initramfs-tools). Value type.
struct TreeDistro {
  std::string id;          // debian, ubuntu, ...
  std::string prettyName;  // for messages
  bool ubuntu = false;
};

// Throws, naming the distribution, for a tree that is not Debian or a derivative of it.
TreeDistro treeDistro(const ImageFs& tree, const std::string& source);

// Packages every base made from a tree gets, so that it boots in a cloud like a distribution's
// cloud image: kernel and initramfs, systemd with networkd, ssh, cloud-init with growpart, sudo,
// locales, grub for BIOS and the x86_64-efi modules. The definition's `packages` come on top.
std::vector<std::string> treeBootPackages(const definition::TreeDiskSpec& spec,
                                          const TreeDistro& distro);

// Makes a root tree (from debootstrap, a root tarball or an OCI image) into one that boots in a
// cloud: removes what a container image carries that a VM must not (/.dockerenv, docker's apt
// and dpkg settings, a policy-rc.d that forbids starting services), installs the boot set with
// apt in the sandbox (mount/chroot_session.h) from the tree's own apt sources, generates
// en_US.UTF-8 and makes it the default, then configures it: fstab by label, serial console,
// machine-id empty, no ssh host keys, resolv.conf as systemd-resolved's stub symlink, root
// locked. grub-pc itself is installed later, onto the disk (tree_disk.h).
// `source` names the base in errors (the user's file, not the scratch tree).
void makeTreeBootable(const std::filesystem::path& rootfs, const definition::TreeDiskSpec& spec,
                      const std::string& source, const BuildConfig& config, const ExecContext& exec,
                      BuildLog& log);

// Removes block and character device nodes from a tree made from a file nobody here wrote: they
// would open host devices from a host directory. Every sandbox and every boot gets its own /dev.
// Returns how many were removed.
int removeDeviceNodes(const std::filesystem::path& rootfs);

}  // namespace imgpipe::build
