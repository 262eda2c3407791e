#include "coordinator/definition_check.h"

#include "common/yaml_reader.h"

namespace imgpipe::coord {

// integration point: replaced by the build agent's full definition parser once merged.
std::pair<std::string, std::string> inspectDefinition(const std::string& text, const std::string& sourceName) {
  auto doc = YamlReader::fromString(text, sourceName);
  if (!doc.isMap()) doc.fail("an image definition must be a mapping");
  auto name = doc.required<std::string>("name");
  if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos)
    doc.at("name").fail("'" + name + "' is not a valid image name (use a-z, 0-9, '.', '_', '-')");
  return {name, doc.get<std::string>("version", "")};
}

}  // namespace imgpipe::coord
