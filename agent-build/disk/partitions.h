#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "agent-build/util/exec.h"

namespace imgpipe::build {

// One partition of an attached disk as the kernel and blkid see it. Value type.
struct Partition {
  int number = 0;
  std::filesystem::path device;  // /dev/loop3p1, /dev/nbd0p1
  std::uint64_t start = 0;       // bytes from the start of the disk
  std::uint64_t size = 0;        // bytes
  std::string fsType;            // ext4, vfat, "" (none, e.g. a BIOS boot partition)
  std::string label;
  std::string uuid;
  std::string partTypeGuid;
};

std::uint64_t blockDeviceSize(const std::string& diskName);  // bytes, from sysfs

// Partitions of a whole-disk device (sysfs for geometry, `blkid -p` for filesystems).
std::vector<Partition> listPartitions(const std::string& diskName, const ExecContext& ctx);

// The root filesystem: found by what it is, not by assuming partition 1. In order: an ext4/xfs
// filesystem labelled `labelHint`, then one labelled cloudimg-rootfs/rootfs/root, then the
// only Linux filesystem, then the largest. Throws an Error listing what was found otherwise.
const Partition& findRootPartition(const std::vector<Partition>& parts,
                                   const std::string& labelHint);

std::string describe(const Partition& p);

}  // namespace imgpipe::build
