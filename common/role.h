#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace imgpipe {

// What a key is allowed to be. A key admitted as one role cannot act as another.
enum class Role { build, relay, glance, operator_ };

std::string_view toString(Role role);
std::optional<Role> parseRole(std::string_view text);

}  // namespace imgpipe
