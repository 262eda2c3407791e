#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "agent-build/util/exec.h"
#include "common/unique_fd.h"

namespace imgpipe::build {

// A loop device bound to a file, configured in one LOOP_CONFIGURE ioctl with AUTOCLEAR: the
// kernel detaches it on the last close. This object holds one open fd on it; when it goes away
// (destructor, or the whole build process dying) and nothing mounted from it remains, the device
// is detached by the kernel — no `losetup -d` that a crash could skip. Resource type.
class LoopDevice {
 public:
  struct Options {
    bool readOnly = false;
    bool partScan = true;  // lets the kernel drop partitions (partx-added) on detach
  };
  LoopDevice(const std::filesystem::path& backingFile, Options options);
  ~LoopDevice();
  LoopDevice(LoopDevice&&) = delete;
  LoopDevice& operator=(LoopDevice&&) = delete;

  const std::filesystem::path& device() const { return device_; }  // /dev/loopN
  const std::string& name() const { return name_; }                // loopN
  const std::filesystem::path& backingFile() const { return backingFile_; }

  // This kernel has no partition-table parsers (losetup -P creates no nodes), so partitions are
  // added from user space with `partx -a`, then their device nodes are awaited.
  void addPartitions(const ExecContext& ctx);
  // After growpart changed the table: `partx -u` so the kernel sees the new partition sizes.
  void updatePartitions(const ExecContext& ctx);

  // Closes our fd and waits (bounded) until the kernel has detached the device. Returns false
  // when it is still bound (something still holds it open); it then detaches when that goes.
  bool detach(std::chrono::milliseconds wait = std::chrono::milliseconds(10000));

 private:
  std::filesystem::path backingFile_;
  std::filesystem::path device_;
  std::string name_;
  UniqueFd fd_;
};

// Whether /sys/block/<name> is currently bound to a backing file.
bool loopBound(const std::string& name);
// The backing file of a bound loop device ("" when unbound).
std::string loopBackingFile(const std::string& name);

// Partition nodes of a whole-disk device: waits until /dev/<disk>p<N> (or <disk><N>) exist for
// every partition sysfs lists, creating a node from sysfs where no devtmpfs node appears.
void waitForPartitionNodes(const std::string& diskName, std::chrono::milliseconds timeout);

}  // namespace imgpipe::build
