#pragma once

// The Glance registration of one built image, every default resolved: made once, at build
// time, from the definition's glance: section, the job's version and the disk's virtual size;
// carried in the build manifest (so the transfer manifest's digest covers it) to the glance
// agent, which registers exactly this. Value type.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "definition/image_definition.h"

namespace imgpipe::definition {

struct ResolvedGlance {
  std::string name;         // the definition's image name ("debian-12-docker")
  std::string version;      // the job's version
  std::string displayName;  // the Glance image name
  Visibility visibility = Visibility::private_;
  std::uint64_t minDiskGiB = 0;  // the definition's, or the virtual size rounded up
  std::uint64_t minRamMiB = 0;
  std::vector<std::string> tags;
  std::map<std::string, std::string> properties;  // metadata with properties laid over it
  bool protectedFlag = false;
  std::optional<OlderVersions> olderVersions;  // unset: the glance agent's configured default
};

// min_disk when the definition sets none: no flavor smaller than the disk.
std::uint64_t minDiskGiBFor(std::uint64_t virtualSize);

ResolvedGlance resolveGlance(const GlanceSpec& glance, const std::string& name,
                             const std::string& version, std::uint64_t virtualSize);

nlohmann::json toJson(const ResolvedGlance& g);
// Reads what toJson wrote, checking every field as the definition parser would (reserved
// property names, lengths, values); throws Error naming the field.
ResolvedGlance resolvedGlanceFromJson(const nlohmann::json& j);

std::optional<Visibility> parseVisibility(std::string_view text);
std::optional<OlderVersions> parseOlderVersions(std::string_view text);

}  // namespace imgpipe::definition
