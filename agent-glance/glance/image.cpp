#include "agent-glance/glance/image.h"

#include <set>

#include "common/error.h"
#include "definition/glance_names.h"

namespace imgpipe::glance {
namespace {

using json = nlohmann::json;

std::string str(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::uint64_t> num(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_number_integer()) return std::nullopt;
  auto v = it->get<std::int64_t>();
  if (v < 0) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

bool flag(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

Image parseImage(const json& doc) {
  if (!doc.is_object() || !doc.contains("id") || !doc.contains("status"))
    throw Error("Glance answered with something that is not an image: " +
                doc.dump().substr(0, 200));
  Image img;
  img.id = str(doc, "id");
  img.name = str(doc, "name");
  img.status = str(doc, "status");
  img.visibility = str(doc, "visibility");
  img.owner = str(doc, "owner");
  img.diskFormat = str(doc, "disk_format");
  img.containerFormat = str(doc, "container_format");
  img.size = num(doc, "size");
  img.virtualSize = num(doc, "virtual_size");
  img.osHashAlgo = str(doc, "os_hash_algo");
  img.osHashValue = str(doc, "os_hash_value");
  img.checksum = str(doc, "checksum");
  img.minDisk = num(doc, "min_disk").value_or(0);
  img.minRam = num(doc, "min_ram").value_or(0);
  img.protectedFlag = flag(doc, "protected");
  img.osHidden = flag(doc, "os_hidden");
  if (auto t = doc.find("tags"); t != doc.end() && t->is_array())
    for (const auto& tag : *t)
      if (tag.is_string()) img.tags.push_back(tag.get<std::string>());
  for (const auto& [key, value] : doc.items())
    if (value.is_string() && !definition::isGlanceAttribute(key))
      img.properties[key] = value.get<std::string>();
  img.raw = doc;
  return img;
}

}  // namespace imgpipe::glance
