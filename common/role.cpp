#include "common/role.h"

namespace imgpipe {

std::string_view toString(Role role) {
  switch (role) {
    case Role::build:
      return "build";
    case Role::relay:
      return "relay";
    case Role::glance:
      return "glance";
    case Role::operator_:
      return "operator";
  }
  return "?";
}

std::optional<Role> parseRole(std::string_view text) {
  if (text == "build") return Role::build;
  if (text == "relay") return Role::relay;
  if (text == "glance") return Role::glance;
  if (text == "operator") return Role::operator_;
  return std::nullopt;
}

}  // namespace imgpipe
