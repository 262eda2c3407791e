#include "agent-build/boot/qemu_vm.h"

#include <unistd.h>

#include <mutex>
#include <thread>

#include "agent-build/boot/guest_agent.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

constexpr const char* kOvmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd";
constexpr const char* kOvmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd";

}  // namespace

Overlay::Overlay(const fs::path& image, const fs::path& file, std::uint64_t size,
                 const ExecContext& exec)
    : file_(file) {
  fs::remove(file_);
  run(exec, {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
             fs::absolute(image).string(), file_.string(), std::to_string(size)});
}

Overlay::~Overlay() {
  std::error_code ec;
  fs::remove(file_, ec);
}

namespace {

bool kvmRunsKernel(const std::string& qemu, const fs::path& kernel, const ExecContext& exec) {
  TempDir dir(kernel.parent_path(), "kvm-probe-");
  const auto console = dir.path() / "console.log";
  auto o = commandOptions(
      exec, {qemu, "-accel", "kvm", "-machine", "q35", "-m", "256", "-nodefaults", "-display",
             "none", "-no-reboot", "-monitor", "none", "-serial", "file:" + console.string(),
             "-kernel", kernel.string(), "-append", "console=ttyS0 panic=-1"});
  o.timeout = std::chrono::milliseconds(0);
  Subprocess probe(std::move(o));
  auto panicked = [&] {
    std::error_code ec;
    return fs::exists(console, ec) && readFile(console).find("Kernel panic") != std::string::npos;
  };
  for (int i = 0; i < 200; ++i) {
    if (panicked()) break;
    if (probe.poll()) return panicked();  // panic=-1 with -no-reboot: QEMU exits after it
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const bool ok = panicked();
  probe.terminate();
  return ok;
}

}  // namespace

std::string resolveAccel(const std::string& qemu, const std::string& configured,
                         const fs::path& kernel, const ExecContext& exec) {
  if (configured != "auto") return configured;
  static std::mutex mutex;
  static std::string probed;
  std::lock_guard lock(mutex);
  if (!probed.empty()) return probed;
  probed = "tcg";
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return probed;
  if (!kernel.empty()) {
    if (kvmRunsKernel(qemu, kernel, exec)) probed = "kvm";
    return probed;
  }
  // No disk: SeaBIOS looks for one forever, which is what a working KVM does for 3 s. A KVM that
  // cannot run a vCPU makes QEMU exit at once.
  auto o = commandOptions(
      exec, {qemu, "-accel", "kvm", "-machine", "q35", "-m", "64", "-nodefaults", "-display",
             "none", "-no-reboot", "-serial", "none", "-monitor", "none"});
  o.timeout = std::chrono::milliseconds(0);
  Subprocess probe(std::move(o));
  for (int i = 0; i < 30; ++i) {
    if (probe.poll()) return probed;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  probe.terminate();
  probed = "kvm";
  return probed;
}

QemuVm::QemuVm(const VmOptions& opt, const ExecContext& exec)
    : dir_(opt.dir), sockets_("/run", "imgpipe-vm-") {
  fs::create_directories(dir_);
  for (const auto& f : {console(), results(), guestAgentSocket(), log()})
    fs::remove(f);
  std::vector<std::string> argv = {
      opt.qemu, "-machine", "q35", "-accel", opt.accel, "-m", std::to_string(opt.memory >> 20),
      "-smp", std::to_string(opt.cpus), "-nodefaults", "-display", "none", "-no-user-config",
      // A reboot ends QEMU: the checks run on the first boot only, and a guest that reboots by
      // itself is a finding.
      "-no-reboot", "-chardev", "file,id=console,path=" + console().string(), "-serial",
      "chardev:console", "-drive",
      "if=none,id=seed,format=raw,readonly=on,file=" + opt.seed.string(), "-device",
      "virtio-blk-pci,drive=seed", "-nic",
      std::string("user,model=virtio-net-pci") + (opt.restrictNetwork ? ",restrict=on" : ""),
      // QEMU's own seccomp filter: no spawning, no new privileges, no obsolete calls.
      "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
      "-device", "virtio-serial-pci,id=vser", "-chardev",
      "socket,id=qga,server=on,wait=off,path=" + guestAgentSocket().string(), "-device",
      std::string("virtserialport,bus=vser.0,chardev=qga,name=") + kGuestAgentPort, "-chardev",
      "file,id=results,path=" + results().string(), "-device",
      std::string("virtserialport,bus=vser.0,chardev=results,name=") + kResultsPort};
  const std::vector<std::string> medium =
      opt.cdrom.empty()
          ? std::vector<std::string>{"-drive",
                                     "if=none,id=disk,format=qcow2,discard=unmap,cache=unsafe,"
                                     "file=" +
                                         opt.disk.string(),
                                     "-device", "virtio-blk-pci,drive=disk,bootindex=0"}
          // q35's own AHCI controller, as Nova attaches an ISO image (hw_cdrom_bus=sata).
          : std::vector<std::string>{
                "-drive", "if=none,id=cd,media=cdrom,readonly=on,file=" + opt.cdrom.string(),
                "-device", "ide-cd,bus=ide.0,drive=cd,bootindex=0"};
  argv.insert(argv.end(), medium.begin(), medium.end());
  if (opt.firmware == Firmware::uefi) {
    // A fresh variable store, as a new instance has: the image must boot from the removable
    // path without a boot entry of its own.
    const fs::path vars = dir_ / "OVMF_VARS.fd";
    fs::copy_file(kOvmfVars, vars, fs::copy_options::overwrite_existing);
    argv.insert(argv.end(),
                {"-drive", std::string("if=pflash,format=raw,unit=0,readonly=on,file=") + kOvmfCode,
                 "-drive", "if=pflash,format=raw,unit=1,file=" + vars.string()});
  }
  // QEMU's own messages go to a file: nothing reads its pipes while the guest runs. It runs in the
  // boot's network namespace (nsenter, util-linux).
  if (opt.netns.empty()) throw std::logic_error("QemuVm: no network namespace");
  argv.insert(argv.begin(), {"/usr/bin/nsenter", "--net=" + opt.netns.string(), "--", "/bin/sh",
                             "-c", "exec \"$0\" \"$@\" >" + shellQuote(log().string()) + " 2>&1"});
  auto o = commandOptions(exec, argv);
  o.timeout = std::chrono::milliseconds(0);  // bounded by the acceptance boot's own timeout
  o.onLine = nullptr;
  qemu_.emplace(std::move(o));
}

std::optional<int> QemuVm::exited() {
  return qemu_ ? qemu_->poll() : std::optional<int>(0);
}

std::string QemuVm::exitTail() const {
  try {
    return readFile(log());
  } catch (const Error&) {
    return {};
  }
}

void QemuVm::stop() {
  if (qemu_) qemu_->terminate();
  qemu_.reset();
}

}  // namespace imgpipe::build
