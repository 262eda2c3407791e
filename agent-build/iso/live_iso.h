#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "agent-build/util/exec.h"

namespace imgpipe::build {

// outputs: [iso]: a hybrid BIOS/UEFI live ISO of a finished image's root, the way Debian Live
// and the Airship seed's ephemeral node make theirs, with their tools rather than our own:
// live-boot in the image's initramfs finds the medium and mounts its squashfs root under a RAM
// overlay; mksquashfs packs the root; grub-mkrescue (xorriso, grub for i386-pc and x86_64-efi)
// writes one file that boots from a CD, a USB stick or Glance's disk_format iso under either
// firmware.

// What the image's initramfs needs to boot a live medium: installed into the image before its
// customization ends, and inert on a disk boot (live-boot acts only on `boot=live`).
const std::vector<std::string>& liveBootPackages();

struct LiveIsoOptions {
  std::filesystem::path root;     // the finished image's root, mounted read-only
  std::filesystem::path output;   // the .iso to write
  std::filesystem::path scratch;  // staging: the medium's tree, the squashfs, the overlay
  std::string volumeId;           // ISO 9660 volume id (at most 32 of A-Z 0-9 _)
  std::string kernelArgs = "console=tty0 console=ttyS0,115200";
};

// What the ISO holds. Value type.
struct LiveIso {
  std::string kernel;  // the image's kernel version the ISO boots ("6.1.0-28-amd64")
  std::uint64_t squashfsBytes = 0;
  std::uint64_t isoBytes = 0;
};

// A volume id from an image name: upper case, [A-Z0-9_], at most 32 characters.
std::string liveVolumeId(const std::string& imageName);

// Writes options.output (atomically: a temporary beside it, renamed at the end). The root is
// read, never written: its /etc/fstab, which names the disk's root filesystem, is replaced in
// the squashfs through a read-only overlay. Throws Error naming what is missing (the host's
// tools, the image's kernel or its live-boot initramfs).
LiveIso makeLiveIso(const LiveIsoOptions& options, const ExecContext& exec);

}  // namespace imgpipe::build
