#include "coordinator/definition_check.h"

#include "definition/parse_definition.h"

namespace imgpipe::coord {

std::pair<std::string, std::string> inspectDefinition(const std::string& text,
                                                      const std::string& sourceName) {
  // The build agent's own parser: a definition the coordinator accepts is one the agent can build.
  auto def = definition::parseDefinition(text, sourceName);
  return {def.name, def.version};
}

}  // namespace imgpipe::coord
