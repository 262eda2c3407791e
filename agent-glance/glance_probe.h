#pragma once

#include <string>

#include "agent-glance/glance_config.h"

namespace imgpipe::glance {

// `imgpipe-agent-glance --probe` (run by `imgpipe doctor`): authenticates as configured (a
// Keystone token, or the trusted headers), finds the image API, and makes one authenticated
// request to it. Returns what it found ("Glance at URL answers as project P; import methods:
// ..."); throws an error naming the service, URL and its own message when any of it fails.
std::string probeGlance(const GlanceConfig& config);

}  // namespace imgpipe::glance
