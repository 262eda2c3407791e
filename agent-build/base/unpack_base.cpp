#include "agent-build/base/unpack_base.h"

#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// `producer` writes the disk on stdout; its bytes land sparse in `target`.
void streamInto(const ExecContext& exec, const std::string& producer, const fs::path& packed,
                const fs::path& target, const std::string& member = "") {
  auto o = commandOptions(
      exec, {"bash", "-o", "pipefail", "-c", producer + " | cp --sparse=always /dev/stdin \"$2\"",
             "unpack", packed.string(), target.string(), member});
  run(exec, std::move(o));
}

std::string withoutDotSlash(std::string name) {
  while (name.starts_with("./"))
    name.erase(0, 2);
  return name;
}

// The disk of a Vagrant box: box.img (libvirt) or its one .vmdk (virtualbox). Returns the member
// as tar lists it.
std::string boxDisk(const ExecContext& exec, const fs::path& box, std::string& provider) {
  const std::string listing = run(exec, {"tar", "-tf", box.string()}, true);
  std::vector<std::string> vmdks;
  std::string img, metadata;
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);) {
    const std::string name = withoutDotSlash(line);
    if (name == "box.img") img = line;
    if (name == "metadata.json") metadata = line;
    if (name.ends_with(".vmdk") && name.find('/') == std::string::npos) vmdks.push_back(line);
  }
  if (!metadata.empty()) {
    try {
      provider =
          nlohmann::json::parse(run(exec, {"tar", "-xOf", box.string(), "--", metadata}, true))
              .value("provider", "");
    } catch (const nlohmann::json::exception&) {
      throw Error("the box's metadata.json is not JSON");
    }
  }
  if (!img.empty()) return img;
  if (vmdks.size() == 1) return vmdks.front();
  if (vmdks.size() > 1)
    throw Error("the box holds " + std::to_string(vmdks.size()) +
                " disks (.vmdk); imgpipe builds from a box with one");
  throw Error("the box holds neither box.img (libvirt) nor a .vmdk (virtualbox)" +
              (provider.empty() ? std::string() : "; its provider is " + provider));
}

}  // namespace

std::string unpackBase(const ExecContext& exec, definition::BasePacking packing,
                       const fs::path& packed, const fs::path& target) {
  using definition::BasePacking;
  try {
    switch (packing) {
      case BasePacking::none:
        throw Error("nothing to unpack");
      case BasePacking::xz:
        streamInto(exec, "xz -dc -- \"$1\"", packed, target);
        return "xz";
      case BasePacking::zstd:
        streamInto(exec, "zstd -dcq -- \"$1\"", packed, target);
        return "zstd";
      case BasePacking::gzip:
        streamInto(exec, "gzip -dc -- \"$1\"", packed, target);
        return "gzip";
      case BasePacking::vagrantBox: {
        std::string provider;
        const std::string member = boxDisk(exec, packed, provider);
        streamInto(exec, "tar -xOf \"$1\" -- \"$3\"", packed, target, member);
        return withoutDotSlash(member) + " of a " + (provider.empty() ? "Vagrant" : provider) +
               " box";
      }
    }
    throw Error("unknown packing");
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(target, ec);
    throw Error("cannot unpack base " + packed.string() + " (" +
                std::string(definition::toString(packing)) + "): " + e.what());
  }
}

}  // namespace imgpipe::build
