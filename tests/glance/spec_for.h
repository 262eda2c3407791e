#pragma once

// What a build resolves and carries to the glance agent, made in a test from a definition's
// name, version and glance: section (definition::parseGlance + resolveGlance, as the build does).
#include <cstdint>
#include <string>

#include "common/yaml_reader.h"
#include "definition/parse_definition.h"
#include "definition/resolved_glance.h"

namespace imgpipe::glance::test {

inline definition::ResolvedGlance specFor(const std::string& yaml,
                                          std::uint64_t virtualSize = 4ull << 30) {
  auto doc = YamlReader::fromString(yaml, "def.yaml");
  return definition::resolveGlance(definition::parseGlance(doc), doc.required<std::string>("name"),
                                   doc.get<std::string>("version", "1"), virtualSize);
}

// The build manifest an artifact carries, holding only what the glance agent reads of it.
inline std::string buildManifestFor(const definition::ResolvedGlance& spec) {
  return nlohmann::json{{"glance", definition::toJson(spec)}}.dump();
}

}  // namespace imgpipe::glance::test
