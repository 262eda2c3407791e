#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "definition/parse_definition.h"

namespace imgpipe::build::test {

// What parsing `yaml` as the definition `source` is refused with, or "(no error)".
inline std::string definitionError(std::string_view yaml, const std::string& source = "def.yaml") {
  try {
    definition::parseDefinition(yaml, source);
  } catch (const YamlError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace imgpipe::build::test
