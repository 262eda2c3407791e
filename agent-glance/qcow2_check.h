#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace imgpipe::glance {

// What `qemu-img info --output=json` says about a file. Value type.
struct ImageFileInfo {
  std::string format;  // as probed: "qcow2", "raw", ...
  std::uint64_t virtualSize = 0;
  std::string backingFile;  // "" when none
  std::string dataFile;     // qcow2 external data file; "" when none
  bool encrypted = false;
  bool corruptFlag = false;  // the qcow2 header's "corrupt" bit
};

// Parses qemu-img info's JSON. Throws Error when it is not that.
ImageFileInfo parseQemuImgInfo(const std::string& json);

struct Qcow2Limits {
  std::uint64_t maxVirtualSize = 1ull << 40;   // 1 TiB
  std::chrono::milliseconds timeout{600'000};  // per qemu-img run
};

// `argv` (a qemu-img command) under prlimit: what every qemu-img run on a received file gets
// (a crafted header can make it allocate or spin).
std::vector<std::string> limitedQemuImg(std::vector<std::string> argv,
                                        std::chrono::milliseconds timeout);

// Refuses anything Glance should not get as "qcow2" (Glance itself accepts anything): another
// format, a backing file or external data file (they would reference files on the hypervisor),
// encryption, a virtual size over the limit, and corruption found by `qemu-img check` (leaked
// clusters are only wasted space and pass). Throws Error saying what is wrong with the file.
// qemu-img runs under limitedQemuImg.
ImageFileInfo checkQcow2(const std::filesystem::path& file, const Qcow2Limits& limits,
                         std::stop_token stop = {});

}  // namespace imgpipe::glance
