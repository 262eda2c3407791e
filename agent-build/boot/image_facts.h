#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "agent-build/boot/acceptance.h"
#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// What the finished image holds before its first boot, read offline (read-only export): the
// acceptance boot compares the booted guest against it. Value type.
struct ImageFacts {
  bool hasEsp = false;  // a GPT partition of the EFI system partition type
  std::string machineId;
  std::vector<std::string> sshHostKeys;  // sha256 hex of each ssh_host_*_key.pub
  bool guestAgent = false;               // qemu-guest-agent installed
  bool sshd = false;                     // openssh-server installed
  std::uint64_t virtualSize = 0;
  // A copy of the image's newest /boot/vmlinuz-* (in the scratch dir), for the KVM probe; empty
  // when it has none.
  std::filesystem::path kernel;
};

ImageFacts inspectImage(const std::filesystem::path& qcow2, const std::filesystem::path& scratch,
                        const std::string& rootLabelHint, const ExecContext& exec);

// What the guest must show for this definition: its default user's groups, its services, its
// own checks; the name looked up through the guest's resolv.conf (boot_test.resolve, else the
// host of the definition's first mirror, which the build host itself reached).
GuestExpectations guestExpectations(const definition::ImageDefinition& def,
                                    const ImageFacts& facts);

}  // namespace imgpipe::build
