#include "coordinator/definition_check.h"

#include "definition/bundle.h"
#include "definition/parse_definition.h"

namespace imgpipe::coord {

std::pair<std::string, std::string> inspectDefinition(const definition::Bundle& bundle) {
  // The build agent's own parser and bundle rules: a job the coordinator accepts is one the
  // agent can build.
  auto def = definition::parseBundle(bundle);
  definition::checkBundle(bundle, def);
  return {def.name, def.version};
}

}  // namespace imgpipe::coord
