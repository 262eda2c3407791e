#include "agent-build/disk/read_only_image.h"

#include <fstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

fs::path prepareMountpoint(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p).close();  // the FUSE export mounts over a regular file
  return p;
}

}  // namespace

FuseExport::FuseExport(const fs::path& qcow2, const fs::path& mountpoint, const ExecContext& ctx)
    : mountpoint_(prepareMountpoint(mountpoint)) {
  auto options = commandOptions(
      ctx, {"qemu-storage-daemon", "--blockdev",
            "driver=file,node-name=file0,filename=" + qcow2.string() + ",read-only=on",
            "--blockdev", "driver=qcow2,node-name=disk0,file=file0,read-only=on", "--export",
            "type=fuse,id=export0,node-name=disk0,mountpoint=" + mountpoint_.string() +
                ",writable=off"});
  options.timeout = std::chrono::milliseconds(0);
  daemon_.emplace(std::move(options));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!isMountPoint(mountpoint_)) {
    if (std::chrono::steady_clock::now() > deadline)
      throw Error("qemu-storage-daemon did not export " + qcow2.string() + " within 30 s");
    if (ctx.stop.stop_requested()) throw Error("stopped while exporting " + qcow2.string());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

FuseExport::~FuseExport() {
  if (!daemon_) return;
  daemon_->terminate();  // SIGTERM: the daemon unmounts its export and exits
  daemon_.reset();
  if (isMountPoint(mountpoint_)) {
    log::named("fuse")->warn(
        "FUSE export {} still mounted after qemu-storage-daemon exited; detaching",
        mountpoint_.string());
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
  }
  std::error_code ec;
  fs::remove(mountpoint_, ec);
}

ReadOnlyImage::ReadOnlyImage(const fs::path& qcow2, const fs::path& scratchDir,
                             const std::string& rootLabelHint, const ExecContext& ctx)
    : mountDir_(scratchDir / "ro-root"),
      export_(qcow2, scratchDir / "ro-export.raw", ctx),
      loop_(export_.file(), LoopDevice::Options{.readOnly = true, .partScan = true}) {
  loop_.addPartitions(ctx);
  partitions_ = listPartitions(loop_.name(), ctx);
  rootPartition_ = findRootPartition(partitions_, rootLabelHint);
  diskSize_ = blockDeviceSize(loop_.name());
  fs::create_directories(mountDir_);
  std::string options = rootPartition_.fsType.starts_with("ext") ? "noload" : "norecovery";
  mount_.emplace(rootPartition_.device.string(), mountDir_, rootPartition_.fsType,
                 MS_RDONLY | MS_NOSUID | MS_NODEV, options);
}

}  // namespace imgpipe::build
