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
  // Valid by ids::Kind::fsLabel / fsUuid, or empty: they come from the base image and become
  // /dev/disk/by-label and by-uuid link names in the sandbox.
  std::string label;
  std::string uuid;
  std::string partTypeGuid;
  std::vector<std::string> ignored;  // why a label or UUID the image carries was dropped
};

// Fills `p` from `blkid -p -o export` output. A label or UUID outside its grammar is dropped and
// the reason kept in `p.ignored`: the base image chose those bytes (a LUKS header's UUID can be
// "../../tmp/x").
void applyBlkidExport(Partition& p, std::string_view exportText);

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
