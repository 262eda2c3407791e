#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "agent-build/boot/acceptance.h"
#include "agent-build/config/build_config.h"
#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Everything one acceptance boot needs besides the image. Value type.
struct AcceptanceOptions {
  definition::BootTestSpec spec;
  GuestExpectations expect;  // hostname is chosen per boot
  bool hasEsp = false;       // firmware auto: UEFI too
  bool guestAgent = true;    // the image has qemu-guest-agent: ping it
  std::string rootLabel;     // nspawn: where the root filesystem is
  std::string qemu = "qemu-system-x86_64";
  std::string accel = "auto";         // kvm | tcg | auto
  std::filesystem::path probeKernel;  // auto: the kernel the KVM probe boots (resolveAccel)
  unsigned cpus = 1;
  bool allowNspawn = false;  // build.sandbox.allow_nspawn_boot
  // The definition's network: where the guest's network leads (never to the build host).
  definition::Network network = definition::Network::host;
};

struct ImageFacts;
// The options for a definition's acceptance boot of an image, on this agent.
AcceptanceOptions acceptanceOptions(const definition::ImageDefinition& def, const ImageFacts& facts,
                                    const BuildConfig& config);

// Which firmwares a definition's `firmware` boots an image with.
std::vector<Firmware> firmwaresFor(definition::BootFirmware f, bool hasEsp);

// Boots the finished image once per firmware (or once in a container) and collects the checks.
// The image is never written: QEMU boots a throwaway overlay, nspawn a volatile overlay on a
// read-only mount. Everything it makes lives under `scratch` and is gone when it returns except
// each boot's console log (scratch/console-<firmware>.log). `info` gets progress lines.
std::vector<BootRun> runAcceptanceBoot(const std::filesystem::path& image,
                                       const AcceptanceOptions& options,
                                       const std::filesystem::path& scratch,
                                       const ExecContext& exec,
                                       const std::function<void(const std::string&)>& info);

// Boots a live ISO (outputs: [iso]) the same way, from a CD-ROM and without a disk, once per
// firmware (auto: both, as the ISO has both loaders), with the same checks except the root's
// growth. Only QEMU can boot an ISO: callers skip it under method: nspawn.
std::vector<BootRun> runLiveAcceptanceBoot(const std::filesystem::path& iso,
                                           const AcceptanceOptions& options,
                                           const std::filesystem::path& scratch,
                                           const ExecContext& exec,
                                           const std::function<void(const std::string&)>& info);

}  // namespace imgpipe::build
