#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace imgpipe::glance {

// One image as Glance v2 shows it. Value type.
struct Image {
  std::string id;
  std::string name;
  std::string status;  // queued, saving, uploading, importing, active, killed, deleted, ...
  std::string visibility;
  std::string owner;
  std::string diskFormat;
  std::string containerFormat;
  std::optional<std::uint64_t> size;
  std::optional<std::uint64_t> virtualSize;
  std::string osHashAlgo;
  std::string osHashValue;
  std::string checksum;  // md5, deprecated; shown for completeness
  std::uint64_t minDisk = 0;
  std::uint64_t minRam = 0;
  bool protectedFlag = false;
  bool osHidden = false;
  std::vector<std::string> tags;
  // Every other string attribute: the custom properties (hw_disk_bus, imgpipe_build_id, ...).
  std::map<std::string, std::string> properties;
  nlohmann::json raw;  // the whole document, for what the fields above leave out

  std::string property(const std::string& key) const {
    auto it = properties.find(key);
    return it == properties.end() ? std::string() : it->second;
  }
};

// Throws Error when `doc` is not an image document (no id/status).
Image parseImage(const nlohmann::json& doc);

}  // namespace imgpipe::glance
