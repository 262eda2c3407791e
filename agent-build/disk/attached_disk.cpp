#include "agent-build/disk/attached_disk.h"

#include <fstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

bool nbdConnected(const std::string& name) {
  std::error_code ec;
  return fs::exists("/sys/block/" + name + "/pid", ec);
}

}  // namespace

LoopDisk::LoopDisk(const fs::path& rawFile, bool readOnly, const ExecContext& ctx)
    : loop_(rawFile, LoopDevice::Options{.readOnly = readOnly, .partScan = true}) {
  loop_.addPartitions(ctx);
}

std::string LoopDisk::describe() const {
  return loop_.device().string() + " (loop, autoclear) on " + loop_.backingFile().string();
}

bool nbdAvailable() {
  std::error_code ec;
  return fs::exists("/dev/nbd0", ec) && fs::exists("/sys/block/nbd0", ec);
}

AttachMethod resolveAttachMethod(AttachMethod configured) {
  if (configured != AttachMethod::auto_) return configured;
  return nbdAvailable() ? AttachMethod::nbd : AttachMethod::loop;
}

NbdDisk::NbdDisk(const fs::path& qcow2File, const ExecContext& ctx) : file_(qcow2File), ctx_(ctx) {
  for (int i = 0; i < 256 && !server_; ++i) {
    std::string name = "nbd" + std::to_string(i);
    if (!fs::exists("/dev/" + name)) break;
    if (nbdConnected(name)) continue;
    auto lock = FileLock::tryLock("/run/lock/imgpipe-" + name + ".lock");
    if (!lock.locked() || nbdConnected(name)) continue;
    device_ = "/dev/" + name;
    auto options = commandOptions(
        ctx, {"qemu-nbd", "--verbose", "--connect=" + device_.string(), "--format=qcow2",
              "--cache=writeback", "--discard=unmap", "--detect-zeroes=unmap", file_.string()});
    options.timeout = std::chrono::milliseconds(0);  // runs for the whole build
    server_.emplace(std::move(options));
    lock_.emplace(std::move(lock));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!nbdConnected(name)) {
      if (std::chrono::steady_clock::now() > deadline)
        throw Error("qemu-nbd did not connect " + device_.string() + " within 30 s");
      if (ctx.stop.stop_requested()) throw Error("stopped while connecting " + device_.string());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // Kernels with partition parsers scan by themselves; others need partx.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (listPartitions(name, ctx).empty()) runUnchecked(ctx, {"partx", "-a", device_.string()});
    waitForPartitionNodes(name, std::chrono::milliseconds(10000));
  }
  if (!server_) throw Error("no free /dev/nbd* device (all connected or locked by other builds)");
}

NbdDisk::~NbdDisk() {
  if (!detach())
    log::named("nbd")->warn("{} still connected after disconnect; it goes when qemu-nbd exits",
                            device_.string());
}

void NbdDisk::refreshPartitions(const ExecContext& ctx) {
  runUnchecked(ctx, {"partx", "-u", device_.string()});
  waitForPartitionNodes(name(), std::chrono::milliseconds(10000));
}

bool NbdDisk::detach() {
  if (!server_) return true;
  runUnchecked(ctx_, {"qemu-nbd", "--disconnect", device_.string()});
  // The server exits once disconnected; terminate() only escalates if it does not.
  server_->terminate();
  server_.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (nbdConnected(name()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bool ok = !nbdConnected(name());
  lock_.reset();
  return ok;
}

std::string NbdDisk::describe() const {
  return device_.string() + " (qemu-nbd) on " + file_.string();
}

std::unique_ptr<AttachedDisk> attachDisk(const WorkImage& image, const ExecContext& ctx) {
  if (image.format == "raw") return std::make_unique<LoopDisk>(image.file, false, ctx);
  if (image.format == "qcow2") return std::make_unique<NbdDisk>(image.file, ctx);
  throw Error("cannot attach a work image in format " + image.format);
}

}  // namespace imgpipe::build
