#pragma once

#include <filesystem>

#include "agent-build/config/build_config.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Writes a bootable root tree (bootable_tree.h) onto a disk laid out like Ubuntu's and Debian's
// cloud images, and compresses it into the qcow2 `output`:
//   GPT raw disk (p14 BIOS boot, p15 EFI system partition, p1 ext4 labelled `root_label`) filled
//   with `mke2fs -d` -> grub-pc installed through a loop device and the sandbox with the disk's
//   nodes, the x86_64-efi loader made there and written onto the ESP with mtools (BIOS and UEFI
//   boot the same grub.cfg) -> sealed like a cloud image -> compressed qcow2.
// `rootfs` is consumed (removed once on the disk). Runs inside the build child (private mount
// and PID namespaces); `scratch` is removed by the caller.
void writeTreeDisk(const std::filesystem::path& rootfs, const definition::TreeDiskSpec& spec,
                   const std::filesystem::path& output, const std::filesystem::path& scratch,
                   const BuildConfig& config, const ExecContext& exec, BuildLog& log);

}  // namespace imgpipe::build
