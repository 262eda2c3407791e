#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent-build/util/image_fs.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// One offline check of a finished image. Value type.
struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
};

struct CleanupReport {
  std::uint64_t removed = 0;    // files and directories removed
  std::uint64_t truncated = 0;  // log files emptied
  std::uint64_t bytes = 0;      // bytes they held
};

// What every image gets before it is sealed, so that each instance booted from it starts fresh
// and nothing of the build leaks into it: apt lists and caches, logs (emptied; rotated ones
// removed), shell histories, ssh host keys (cloud-init makes new ones per instance),
// machine-id (emptied: systemd makes one at first boot; /var/lib/dbus/machine-id removed),
// cloud-init state, temp files, the random seed and DHCP leases, plus the definition's own
// `cleanup.remove` patterns.
CleanupReport cleanImage(ImageFs& img, const definition::CleanupSpec& spec);

// The same list, checked on a finished image (read-only).
std::vector<Check> checkImageIsClean(const ImageFs& img, const definition::CleanupSpec& spec);

}  // namespace imgpipe::build
