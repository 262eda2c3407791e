#include "definition/resolved_glance.h"

#include "common/error.h"
#include "definition/glance_names.h"

namespace imgpipe::definition {
namespace {

constexpr std::size_t kMaxGlanceString = 255;  // Glance's column size for names, keys, values

template <typename T>
T field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(std::string("glance.") + key + ": missing");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(std::string("glance.") + key + ": has the wrong type (" + it->type_name() + ")");
  }
}

void check(const ResolvedGlance& g) {
  if (g.name.empty()) throw Error("glance.name: empty");
  if (g.displayName.empty() || g.displayName.size() > kMaxGlanceString)
    throw Error("glance.display_name: must have 1 to 255 characters");
  for (const auto& tag : g.tags)
    if (tag.empty() || tag.size() > kMaxGlanceString)
      throw Error("glance.tags: '" + tag.substr(0, 40) + "' is not 1 to 255 characters");
  for (const auto& [key, value] : g.properties) {
    if (key.empty() || key.size() > kMaxGlanceString)
      throw Error("glance.properties: a property name is not 1 to 255 characters");
    if (value.size() > kMaxGlanceString)
      throw Error("glance.properties." + key + ": value is longer than 255 characters");
    if (auto problem = reservedPropertyProblem(key)) throw Error("glance.properties: " + *problem);
  }
}

}  // namespace

std::uint64_t minDiskGiBFor(std::uint64_t virtualSize) {
  return (virtualSize + (1ull << 30) - 1) >> 30;
}

std::optional<Visibility> parseVisibility(std::string_view s) {
  if (s == "private") return Visibility::private_;
  if (s == "shared") return Visibility::shared;
  if (s == "community") return Visibility::community;
  if (s == "public") return Visibility::public_;
  return std::nullopt;
}

std::optional<OlderVersions> parseOlderVersions(std::string_view s) {
  if (s == "keep") return OlderVersions::keep;
  if (s == "hide") return OlderVersions::hide;
  if (s == "rename") return OlderVersions::rename;
  return std::nullopt;
}

ResolvedGlance resolveGlance(const GlanceSpec& g, const std::string& name,
                             const std::string& version, std::uint64_t virtualSize) {
  ResolvedGlance r;
  r.name = name;
  r.version = version;
  r.displayName = g.displayNameFor(name, version);
  r.visibility = g.visibility;
  r.minDiskGiB = g.minDiskGiB ? *g.minDiskGiB : minDiskGiBFor(virtualSize);
  r.minRamMiB = g.minRamMiB.value_or(0);
  r.tags = g.tags;
  r.properties = g.allProperties();
  r.protectedFlag = g.protected_;
  r.olderVersions = g.olderVersions;
  check(r);
  return r;
}

nlohmann::json toJson(const ResolvedGlance& g) {
  return {{"name", g.name},
          {"version", g.version},
          {"display_name", g.displayName},
          {"visibility", toString(g.visibility)},
          {"min_disk", g.minDiskGiB},
          {"min_ram", g.minRamMiB},
          {"tags", g.tags},
          {"protected", g.protectedFlag},
          {"older_versions",
           g.olderVersions ? nlohmann::json(toString(*g.olderVersions)) : nlohmann::json(nullptr)},
          {"properties", g.properties}};
}

ResolvedGlance resolvedGlanceFromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("glance: the build manifest's glance section is not an object");
  ResolvedGlance g;
  g.name = field<std::string>(j, "name");
  g.version = field<std::string>(j, "version");
  g.displayName = field<std::string>(j, "display_name");
  const auto vis = field<std::string>(j, "visibility");
  auto v = parseVisibility(vis);
  if (!v)
    throw Error("glance.visibility: '" + vis + "' is not private, shared, community or public");
  g.visibility = *v;
  g.minDiskGiB = field<std::uint64_t>(j, "min_disk");
  g.minRamMiB = field<std::uint64_t>(j, "min_ram");
  g.tags = field<std::vector<std::string>>(j, "tags");
  g.protectedFlag = field<bool>(j, "protected");
  if (auto it = j.find("older_versions"); it != j.end() && !it->is_null()) {
    const auto text = field<std::string>(j, "older_versions");
    g.olderVersions = parseOlderVersions(text);
    if (!g.olderVersions)
      throw Error("glance.older_versions: '" + text + "' is not keep, hide or rename");
  }
  g.properties = field<std::map<std::string, std::string>>(j, "properties");
  check(g);
  return g;
}

}  // namespace imgpipe::definition
