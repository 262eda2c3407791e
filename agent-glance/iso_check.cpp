#include "agent-glance/iso_check.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <array>
#include <string_view>

#include "common/error.h"
#include "common/fd_io.h"
#include "common/unique_fd.h"

namespace imgpipe::glance {
namespace {

// ECMA-119: volume descriptors are 2048-byte sectors from sector 16 on, each starting with its
// type, "CD001" and version 1; the set ends with type 255.
constexpr std::uint64_t kSector = 2048;
constexpr std::uint64_t kFirstDescriptor = 16;
constexpr unsigned kMaxDescriptors = 32;
constexpr std::uint8_t kBootRecord = 0, kPrimary = 1, kTerminator = 255;
constexpr std::string_view kStandardId = "CD001";
constexpr std::string_view kElTorito = "EL TORITO SPECIFICATION";

std::uint32_t le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint16_t le16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

}  // namespace

IsoFileInfo checkIso(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open " + file.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throwErrno("cannot stat " + file.string());
  const auto size = static_cast<std::uint64_t>(st.st_size);
  IsoFileInfo info;
  bool primary = false;
  std::array<unsigned char, kSector> d{};
  for (unsigned i = 0; i < kMaxDescriptors; ++i) {
    const std::uint64_t offset = (kFirstDescriptor + i) * kSector;
    const ssize_t got = preadFully(fd.get(), d.data(), d.size(), offset);
    if (got < 0) throwErrno("cannot read " + file.string());
    if (static_cast<std::uint64_t>(got) < kSector ||
        std::string_view(reinterpret_cast<const char*>(d.data() + 1), 5) != kStandardId ||
        d[6] != 1)
      break;
    if (d[0] == kTerminator) break;
    if (d[0] == kPrimary && !primary) {
      primary = true;
      const std::uint32_t blocks = le32(d.data() + 80);
      const std::uint16_t blockSize = le16(d.data() + 128);
      info.volumeBytes = static_cast<std::uint64_t>(blocks) * blockSize;
    } else if (d[0] == kBootRecord && std::string_view(reinterpret_cast<const char*>(d.data() + 7),
                                                       kElTorito.size()) == kElTorito) {
      info.elTorito = true;
    }
  }
  if (!primary)
    throw Error(file.filename().string() +
                " is not an ISO 9660 image (no primary volume descriptor at sector 16); "
                "refusing to register it as disk_format iso");
  if (info.volumeBytes == 0 || info.volumeBytes > size)
    throw Error(file.filename().string() + " declares an ISO 9660 volume of " +
                std::to_string(info.volumeBytes) + " bytes and holds " + std::to_string(size) +
                "; refusing a cut-short ISO");
  return info;
}

}  // namespace imgpipe::glance
