#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "agent-build/boot/acceptance.h"
#include "agent-build/util/exec.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"

namespace imgpipe::build {

inline constexpr const char* kResultsPort = "org.imgpipe.acceptance.0";

// A qcow2 overlay on top of the image under test, sized as the instance's disk: the guest
// writes (and grows its root) there, the image itself is opened read-only as the backing file.
// Removed on destruction. Resource type.
class Overlay {
 public:
  Overlay(const std::filesystem::path& image, const std::filesystem::path& file, std::uint64_t size,
          const ExecContext& exec);
  ~Overlay();
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

// kvm when QEMU can really run a Linux kernel with it, else tcg. `configured`: kvm | tcg | auto;
// auto tries, once per process: /dev/kvm can exist and still fail — QEMU dies at once ("failed
// to set MSR" under a paravirtual KVM), or, on another such host, runs the firmware and the
// bootloader and then hangs for good as the kernel starts. So the probe boots `kernel` (the
// image's own, without an initramfs) and wants its panic at the missing root within 20 s;
// without a kernel it can only see whether a guest keeps running.
std::string resolveAccel(const std::string& qemu, const std::string& configured,
                         const std::filesystem::path& kernel, const ExecContext& exec);

struct VmOptions {
  std::string qemu = "qemu-system-x86_64";
  std::string accel = "tcg";
  Firmware firmware = Firmware::bios;
  std::uint64_t memory = 1024ull << 20;
  unsigned cpus = 1;
  std::filesystem::path disk;   // the overlay; empty with a cdrom
  std::filesystem::path cdrom;  // a live ISO, booted instead of a disk
  std::filesystem::path seed;   // the NoCloud seed image
  std::filesystem::path dir;    // console log, sockets, results, UEFI variables
  // The network namespace QEMU runs in (never the host's: user networking's 10.0.2.2 is the
  // loopback of the namespace QEMU is in), and whether the guest may reach anything through it.
  std::filesystem::path netns;
  bool restrictNetwork = true;  // QEMU's restrict=on: no connection leaves the VM
};

// A guest booted the way Nova boots one: q35, the disk (or a live ISO on a SATA CD-ROM) through
// the image's own bootloader
// (SeaBIOS, or OVMF with a fresh variable store), the seed as a second disk, user networking
// (virtio-net), a virtio-serial controller with the guest agent's port (a unix socket here)
// and the acceptance checks' results port (a file here), the serial console into a file.
// QEMU is killed on destruction. Resource type.
class QemuVm {
 public:
  QemuVm(const VmOptions& options, const ExecContext& exec);
  QemuVm(const QemuVm&) = delete;
  QemuVm& operator=(const QemuVm&) = delete;

  std::filesystem::path console() const { return dir_ / "console.log"; }
  std::filesystem::path results() const { return dir_ / "results.jsonl"; }
  // In a short directory of its own: a unix socket path has at most 107 bytes, and the work
  // dir of a build can be deeper than that leaves.
  std::filesystem::path guestAgentSocket() const { return sockets_.path() / "qga.sock"; }
  std::filesystem::path log() const { return dir_ / "qemu.log"; }
  // The exit code once QEMU has exited (the guest powered off or QEMU failed), else nullopt.
  std::optional<int> exited();
  std::string exitTail() const;  // QEMU's own last output lines
  void stop();

 private:
  std::filesystem::path dir_;
  TempDir sockets_;
  std::optional<Subprocess> qemu_;
};

}  // namespace imgpipe::build
