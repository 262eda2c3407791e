#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Packages every debootstrap base gets, so that it boots in a cloud like a distribution's cloud
// image: kernel and initramfs, systemd with networkd/resolved, ssh, cloud-init with growpart,
// sudo. The definition's `packages` come on top.
std::vector<std::string> debootstrapBootPackages(const definition::DebootstrapBase& spec);

// The cache key of a debootstrap base: a digest of everything that decides its content.
std::string debootstrapRecipeKey(const definition::DebootstrapBase& spec);

// Makes a cloud-like base image from a Debian-style mirror, without any cloud image:
//   debootstrap -> apt (boot set, en_US.UTF-8 generated) -> configure (fstab by label, serial
//   console, machine-id empty, no host keys, resolv.conf as systemd-resolved's stub symlink) ->
//   GPT raw disk (p14 BIOS boot, p15 EFI system partition, p1 ext4 labelled `root_label`)
//   filled with `mke2fs -d` -> grub-pc installed through a loop device and the sandbox
//   (mount/sandbox.h) with the disk's nodes, the x86_64-efi loader made there and written onto
//   the ESP with mtools (BIOS and UEFI boot the same grub.cfg) -> compressed qcow2 at `output`.
// debootstrap runs --foreign on the host (download and unpack only); its second stage and apt
// run in the sandbox.
// Runs inside the build child (private mount and PID namespaces). `scratch` is removed by the
// caller.
void makeDebootstrapBase(const definition::DebootstrapBase& spec,
                         const std::filesystem::path& output, const std::filesystem::path& scratch,
                         const BuildConfig& config, const ExecContext& exec, BuildLog& log);

}  // namespace imgpipe::build
