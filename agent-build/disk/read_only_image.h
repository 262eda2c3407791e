#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "agent-build/disk/loop_device.h"
#include "agent-build/disk/partitions.h"
#include "agent-build/mount/mount.h"
#include "agent-build/util/exec.h"
#include "common/subprocess.h"

namespace imgpipe::build {

// A qcow2 exported read-only as a raw file through qemu-storage-daemon's FUSE export (method (a)
// of the notes): lets the finished, compressed image be inspected in place, without converting
// it again. The daemon is a child of the build (dies with it); the export is unmounted when the
// daemon exits. Resource type.
class FuseExport {
 public:
  FuseExport(const std::filesystem::path& qcow2, const std::filesystem::path& mountpoint,
             const ExecContext& ctx);
  ~FuseExport();
  FuseExport(const FuseExport&) = delete;
  FuseExport& operator=(const FuseExport&) = delete;
  const std::filesystem::path& file() const { return mountpoint_; }

 private:
  std::filesystem::path mountpoint_;
  std::optional<Subprocess> daemon_;
};

// A finished image opened read-only: FUSE export -> read-only loop device with partitions ->
// root filesystem mounted ro,noload (no journal replay, so not one byte of the image changes).
// Members unwind in reverse. Resource type.
class ReadOnlyImage {
 public:
  ReadOnlyImage(const std::filesystem::path& qcow2, const std::filesystem::path& scratchDir,
                const std::string& rootLabelHint, const ExecContext& ctx);
  const std::filesystem::path& root() const { return mountDir_; }
  const Partition& rootPartition() const { return rootPartition_; }
  const std::vector<Partition>& partitions() const { return partitions_; }
  std::uint64_t diskSize() const { return diskSize_; }
  const std::filesystem::path& rawFile() const { return export_.file(); }
  const LoopDevice& loop() const { return loop_; }
  // Unmounts the root but keeps the device, for checks that need it unmounted (e2fsck -n).
  void unmountRoot() { mount_.reset(); }

 private:
  std::filesystem::path mountDir_;
  FuseExport export_;
  LoopDevice loop_;
  std::vector<Partition> partitions_;
  Partition rootPartition_;
  std::uint64_t diskSize_ = 0;
  std::optional<Mount> mount_;
};

}  // namespace imgpipe::build
