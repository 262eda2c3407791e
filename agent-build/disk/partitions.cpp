#include "agent-build/disk/partitions.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/units.h"
#include "protocol/ids.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

std::uint64_t readNumber(const fs::path& p) {
  std::ifstream in(p);
  std::uint64_t v = 0;
  if (!(in >> v)) throw Error("cannot read " + p.string());
  return v;
}

bool isLinuxFs(const std::string& t) {
  return t == "ext4" || t == "ext3" || t == "ext2" || t == "xfs" || t == "btrfs";
}

}  // namespace

void applyBlkidExport(Partition& p, std::string_view exportText) {
  const std::string where =
      "partition " + std::to_string(p.number) + " (" + p.device.string() + ")";
  std::istringstream in{std::string(exportText)};
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto key = line.substr(0, eq), value = line.substr(eq + 1);
    auto checked = [&](ids::Kind kind, const char* what) {
      if (auto why = ids::problem(where + " " + what, kind, value)) {
        p.ignored.push_back(*why + "; ignored (no /dev/disk link is made for it)");
        return std::string();
      }
      return value;
    };
    if (key == "TYPE")
      p.fsType = value;
    else if (key == "LABEL")
      p.label = checked(ids::Kind::fsLabel, "label");
    else if (key == "UUID")
      p.uuid = checked(ids::Kind::fsUuid, "UUID");
    else if (key == "PART_ENTRY_TYPE")
      p.partTypeGuid = value;
  }
}

std::uint64_t blockDeviceSize(const std::string& diskName) {
  return readNumber("/sys/block/" + diskName + "/size") * 512;
}

std::vector<Partition> listPartitions(const std::string& diskName, const ExecContext& ctx) {
  std::vector<Partition> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/block/" + diskName, ec)) {
    if (!fs::exists(e.path() / "partition")) continue;
    Partition p;
    p.number = static_cast<int>(readNumber(e.path() / "partition"));
    p.device = "/dev/" + e.path().filename().string();
    p.start = readNumber(e.path() / "start") * 512;
    p.size = readNumber(e.path() / "size") * 512;
    auto r = runUnchecked(ctx, {"blkid", "-p", "-o", "export", p.device.string()}, true);
    applyBlkidExport(p, r.stdoutText);
    out.push_back(p);
  }
  std::sort(out.begin(), out.end(),
            [](const Partition& a, const Partition& b) { return a.number < b.number; });
  return out;
}

const Partition& findRootPartition(const std::vector<Partition>& parts,
                                   const std::string& labelHint) {
  auto byLabel = [&](const std::string& label) -> const Partition* {
    for (const auto& p : parts)
      if (!label.empty() && p.label == label && isLinuxFs(p.fsType)) return &p;
    return nullptr;
  };
  if (auto* p = byLabel(labelHint)) return *p;
  for (const char* l : {"cloudimg-rootfs", "rootfs", "root", "ROOT"})
    if (auto* p = byLabel(l)) return *p;
  const Partition* largest = nullptr;
  for (const auto& p : parts) {
    if (!isLinuxFs(p.fsType)) continue;
    if (!largest || p.size > largest->size) largest = &p;
  }
  if (largest) return *largest;
  std::string found;
  for (const auto& p : parts)
    found += "\n  " + describe(p);
  throw Error("no root filesystem found on the disk (looked for ext4/xfs/btrfs" +
              (labelHint.empty() ? std::string() : ", label '" + labelHint + "'") +
              "); partitions:" + (found.empty() ? std::string(" none") : found));
}

std::string describe(const Partition& p) {
  return p.device.string() + " (partition " + std::to_string(p.number) + ", " +
         formatBytes(p.size) + ", " + (p.fsType.empty() ? std::string("no filesystem") : p.fsType) +
         (p.label.empty() ? "" : ", label " + p.label) + ")";
}

}  // namespace imgpipe::build
