#pragma once

#include <cstdint>
#include <filesystem>

namespace imgpipe::glance {

// What the ISO 9660 primary volume descriptor says about a file. Value type.
struct IsoFileInfo {
  std::uint64_t volumeBytes = 0;  // volume space size x logical block size
  bool elTorito = false;          // a boot record volume descriptor names El Torito
};

// Refuses anything Glance should not get as "iso": a file without an ISO 9660 primary volume
// descriptor at sector 16, or one shorter than the volume it declares (cut short on the way).
// Reads the volume descriptors only; the build's SHA-256/512 already say the bytes are the
// build's, this says they are an ISO. Throws Error saying what is wrong with the file.
IsoFileInfo checkIso(const std::filesystem::path& file);

}  // namespace imgpipe::glance
