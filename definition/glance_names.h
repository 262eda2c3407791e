#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace imgpipe::definition {

// Glance's own image attributes (its image schema, plus those only some deployments show) and
// the os_glance_ prefix it reserves: never custom properties. The one table, read by the
// definition parser (so `imgpipe validate` refuses them) and by the Glance client (to tell an
// image's properties from its attributes).
bool isGlanceAttribute(std::string_view key);

// Why a definition cannot set `key` as a custom property — a Glance attribute (naming the
// glance: field to use instead, where there is one) or imgpipe's own imgpipe_ prefix; nullopt
// when it can.
std::optional<std::string> reservedPropertyProblem(std::string_view key);

}  // namespace imgpipe::definition
