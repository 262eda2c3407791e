#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "definition/image_definition.h"

namespace imgpipe::definition {

// The whole definition as JSON (keys as in the YAML). Stable key order, so its hash is a
// canonical digest of what was asked for.
nlohmann::json toJson(const ImageDefinition& def);

// The Glance registration as the Glance agent should apply it, with every default resolved:
// display name, min_disk from the virtual size when unset, merged properties.
nlohmann::json resolvedGlanceJson(const GlanceSpec& glance, const std::string& name,
                                  const std::string& version, std::uint64_t virtualSize);

// A human-readable summary for `imgpipe validate` and `imgpipe-agent-build validate`.
std::string summarize(const ImageDefinition& def);

}  // namespace imgpipe::definition
