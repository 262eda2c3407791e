#pragma once

#include <chrono>
#include <filesystem>
#include <stop_token>

#include "common/temp_dir.h"
#include "definition/outputs.h"

namespace imgpipe::glance {

// The raw image of a delivered qcow2, expanded in the artifact store's scratch space (swept when
// the agent starts, so a crash leaves nothing) for as long as it is being registered, and
// removed when this goes. The qcow2 must have been verified and checked (checkQcow2) first: a
// backing file would otherwise be read into the raw. Resource type.
class ExpandedRaw {
 public:
  // Expands `qcow2` into `scratchDir` (sparse) and checks its size and both digests against
  // `expected`, the build's digests of the same expansion. Throws Error naming what differs,
  // or why qemu-img failed (a full disk among them); nothing is left behind.
  ExpandedRaw(const std::filesystem::path& qcow2, const std::filesystem::path& scratchDir,
              const definition::OutputDigests& expected, std::chrono::milliseconds timeout,
              std::stop_token stop);
  const std::filesystem::path& file() const { return file_; }

 private:
  TempDir dir_;  // its own, so two registrations never share a file
  std::filesystem::path file_;
};

}  // namespace imgpipe::glance
