#include "agent-build/disk/loop_device.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

std::string readSysfs(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

bool loopBound(const std::string& name) {
  std::error_code ec;
  return fs::exists("/sys/block/" + name + "/loop/backing_file", ec);
}

std::string loopBackingFile(const std::string& name) {
  return readSysfs("/sys/block/" + name + "/loop/backing_file");
}

LoopDevice::LoopDevice(const fs::path& backingFile, Options options)
    : backingFile_(fs::absolute(backingFile)) {
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl) throwErrno("cannot open /dev/loop-control (is the loop module available?)");
  const int mode = options.readOnly ? O_RDONLY : O_RDWR;
  UniqueFd backing(::open(backingFile_.c_str(), mode | O_CLOEXEC));
  if (!backing) throwErrno("cannot open " + backingFile_.string() + " for a loop device");

  // LOOP_CTL_GET_FREE and LOOP_CONFIGURE are two steps: another process (another build, another
  // engineer's test) may take the same device in between; EBUSY means try the next free one.
  for (int attempt = 0; attempt < 50; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) throwErrno("cannot allocate a loop device");
    std::string name = "loop" + std::to_string(n);
    fs::path dev = "/dev/" + name;
    UniqueFd fd;
    for (int i = 0; i < 50 && !fd; ++i) {
      fd.reset(::open(dev.c_str(), mode | O_CLOEXEC));
      if (!fd && errno == ENOENT)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      else if (!fd)
        throwErrno("cannot open " + dev.string());
    }
    if (!fd) throw Error("loop device node " + dev.string() + " did not appear");
    loop_config cfg{};
    cfg.fd = static_cast<__u32>(backing.get());
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (options.partScan ? LO_FLAGS_PARTSCAN : 0) |
                        (options.readOnly ? LO_FLAGS_READ_ONLY : 0);
    std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), backingFile_.c_str(),
                 LO_NAME_SIZE - 1);
    if (::ioctl(fd.get(), LOOP_CONFIGURE, &cfg) == 0) {
      device_ = dev;
      name_ = name;
      fd_ = std::move(fd);
      return;
    }
    if (errno != EBUSY) throwErrno("cannot bind " + dev.string() + " to " + backingFile_.string());
  }
  throw Error("no free loop device after 50 attempts (all busy)");
}

LoopDevice::~LoopDevice() {
  if (fd_ && !detach()) {
    log::named("loop")->warn(
        "{} is still bound to {} after closing it; the kernel detaches it "
        "when its last user goes",
        device_.string(), backingFile_.string());
  }
}

void LoopDevice::addPartitions(const ExecContext& ctx) {
  auto r = runUnchecked(ctx, {"partx", "-a", device_.string()});
  // partx -a exits 1 when the partitions are already known (a kernel that does parse tables).
  if (r.exitCode != 0) {
    std::error_code ec;
    bool any = false;
    for (const auto& e : fs::directory_iterator("/sys/block/" + name_, ec))
      if (e.path().filename().string().starts_with(name_ + "p")) any = true;
    if (!any) throw CommandError("partx -a " + device_.string(), r);
  }
  waitForPartitionNodes(name_, std::chrono::milliseconds(10000));
}

void LoopDevice::updatePartitions(const ExecContext& ctx) {
  run(ctx, {"partx", "-u", device_.string()});
  waitForPartitionNodes(name_, std::chrono::milliseconds(10000));
}

bool LoopDevice::detach(std::chrono::milliseconds wait) {
  if (!fd_) return true;
  fd_.reset();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    // Bound to our file no more: detached (possibly already re-used by someone else).
    if (!loopBound(name_) || loopBackingFile(name_) != backingFile_.string()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void waitForPartitionNodes(const std::string& diskName, std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  for (;;) {
    bool missing = false;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/sys/block/" + diskName, ec)) {
      auto part = e.path().filename().string();
      if (!part.starts_with(diskName) || part == diskName) continue;
      if (!fs::exists(e.path() / "partition", ec)) continue;
      fs::path node = "/dev/" + part;
      if (fs::exists(node, ec)) continue;
      // devtmpfs normally creates the node at once; if it has not after half the wait (no udev
      // here to fall back on), make it from the numbers sysfs reports.
      auto dev = readSysfs(e.path() / "dev");
      auto colon = dev.find(':');
      if (colon != std::string::npos && std::chrono::steady_clock::now() - start > timeout / 2) {
        unsigned maj = static_cast<unsigned>(std::stoul(dev.substr(0, colon)));
        unsigned min = static_cast<unsigned>(std::stoul(dev.substr(colon + 1)));
        if (::mknod(node.c_str(), S_IFBLK | 0600, makedev(maj, min)) == 0) continue;
      }
      missing = true;
    }
    if (!missing) return;
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error("partition device nodes of /dev/" + diskName + " did not appear within " +
                  std::to_string(timeout.count()) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace imgpipe::build
