#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "definition/image_definition.h"

namespace imgpipe::definition {

// The whole definition as JSON (keys as in the YAML). Stable key order, so its hash is a
// canonical digest of what was asked for.
nlohmann::json toJson(const ImageDefinition& def);

// A human-readable summary for `imgpipe validate` and `imgpipe-agent-build validate`.
std::string summarize(const ImageDefinition& def);

}  // namespace imgpipe::definition
