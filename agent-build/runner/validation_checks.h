#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "common/agent/task.h"

namespace imgpipe::build {

// The manifest's `validation` (offline checks, and the acceptance boot's boots) as the flat
// list of checks the coordinator keeps for `imgpipe show`: group "validate" or "boot <where>".
std::vector<agent::CheckInfo> checksFromValidation(const nlohmann::json& validation);

}  // namespace imgpipe::build
