#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/disk/loop_device.h"
#include "agent-build/disk/partitions.h"
#include "agent-build/util/exec.h"
#include "agent-build/util/file_lock.h"

namespace imgpipe::build {

// The disk being built, in the format its attachment method needs. Value type.
struct WorkImage {
  std::filesystem::path file;
  std::string format;  // raw (loop) or qcow2 (nbd)
};

// A disk image attached as a block device with its partitions visible. Detaching is the
// destructor's job (and, should the build process die, the kernel's). Resource type.
class AttachedDisk {
 public:
  virtual ~AttachedDisk() = default;
  virtual const std::filesystem::path& device() const = 0;  // the whole disk
  virtual std::string name() const = 0;                     // loop3, nbd0
  // Makes the kernel see a changed partition table (after growpart).
  virtual void refreshPartitions(const ExecContext& ctx) = 0;
  // Detaches now and verifies it; false when the device is still bound.
  virtual bool detach() = 0;
  virtual std::string describe() const = 0;

  std::vector<Partition> partitions(const ExecContext& ctx) const {
    return listPartitions(name(), ctx);
  }
};

// Method (c) of the notes: a sparse raw copy on a loop device, partitions added with partx.
class LoopDisk : public AttachedDisk {
 public:
  LoopDisk(const std::filesystem::path& rawFile, bool readOnly, const ExecContext& ctx);
  const std::filesystem::path& device() const override { return loop_.device(); }
  std::string name() const override { return loop_.name(); }
  void refreshPartitions(const ExecContext& ctx) override { loop_.updatePartitions(ctx); }
  bool detach() override { return loop_.detach(); }
  std::string describe() const override;

 private:
  LoopDevice loop_;
};

// Kernel nbd through `qemu-nbd --connect`, for hosts that have /dev/nbd*. NOT exercised on the
// machines this was developed on (no nbd module there); the loop path is the tested one.
//  - the device is chosen among /dev/nbd* that are not connected, and locked with a host-wide
//    flock (/run/lock/imgpipe-nbdN.lock) so parallel builds never share it;
//  - qemu-nbd runs in the foreground (--verbose keeps it from daemonizing) as a child of the
//    build, so it dies with the build's PID namespace; the kernel then drops the connection;
//  - after connecting, waits until the partitions appear; on detach runs --disconnect and
//    verifies /sys/block/nbdN/pid is gone.
class NbdDisk : public AttachedDisk {
 public:
  NbdDisk(const std::filesystem::path& qcow2File, const ExecContext& ctx);
  ~NbdDisk() override;
  const std::filesystem::path& device() const override { return device_; }
  std::string name() const override { return device_.filename().string(); }
  void refreshPartitions(const ExecContext& ctx) override;
  bool detach() override;
  std::string describe() const override;

 private:
  std::filesystem::path file_;
  std::filesystem::path device_;
  std::optional<FileLock> lock_;
  std::optional<Subprocess> server_;
  ExecContext ctx_;
};

// Whether this host has kernel nbd devices (/dev/nbd0 and /sys/block/nbd0).
bool nbdAvailable();
// auto -> nbd where available, else loop.
AttachMethod resolveAttachMethod(AttachMethod configured);

std::unique_ptr<AttachedDisk> attachDisk(const WorkImage& image, const ExecContext& ctx);

}  // namespace imgpipe::build
