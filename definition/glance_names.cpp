#include "definition/glance_names.h"

#include <map>

namespace imgpipe::definition {
namespace {

// Attribute -> the glance: field that sets it ("" where Glance alone sets it). Setting any of
// them as a property is refused by the API (403), at the very end of a build.
const std::map<std::string_view, std::string_view>& attributes() {
  static const std::map<std::string_view, std::string_view> table = {
      {"checksum", ""},
      {"container_format", ""},
      {"created_at", ""},
      {"deleted", ""},
      {"deleted_at", ""},
      {"direct_url", ""},
      {"disk_format", ""},
      {"file", ""},
      {"id", ""},
      {"instance_uuid", ""},
      {"kernel_id", ""},
      {"locations", ""},
      {"member_status", ""},
      {"min_disk", "use glance.min_disk"},
      {"min_ram", "use glance.min_ram"},
      {"name", "use glance.display_name"},
      {"os_hash_algo", ""},
      {"os_hash_value", ""},
      {"os_hidden", "set by glance.older_versions"},
      {"owner", ""},
      {"protected", "use glance.protected"},
      {"ramdisk_id", ""},
      {"schema", ""},
      {"self", ""},
      {"size", ""},
      {"status", ""},
      {"stores", ""},
      {"tags", "use glance.tags"},
      {"updated_at", ""},
      {"virtual_size", ""},
      {"visibility", "use glance.visibility"},
  };
  return table;
}

constexpr std::string_view kGlancePrefix = "os_glance_";
constexpr std::string_view kImgpipePrefix = "imgpipe_";

}  // namespace

bool isGlanceAttribute(std::string_view key) {
  return attributes().count(key) > 0 || key.starts_with(kGlancePrefix);
}

std::optional<std::string> reservedPropertyProblem(std::string_view key) {
  const std::string k(key);
  if (key.starts_with(kImgpipePrefix))
    return "'" + k + "': the imgpipe_ prefix is reserved for the properties imgpipe sets itself";
  if (key.starts_with(kGlancePrefix))
    return "'" + k + "': the os_glance_ prefix is reserved by Glance for its own use";
  auto it = attributes().find(key);
  if (it == attributes().end()) return std::nullopt;
  return "'" + k + "' is reserved by Glance" +
         (it->second.empty() ? std::string() : "; " + std::string(it->second));
}

}  // namespace imgpipe::definition
