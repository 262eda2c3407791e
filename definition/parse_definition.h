#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/yaml_reader.h"
#include "definition/image_definition.h"

namespace imgpipe::definition {

// Parses and validates an image definition. Every mistake is a YamlError naming the file, line,
// field and what is wrong ("def.yaml:12:5: packages.install[2]: ..."); unknown keys are errors.
// Does not touch the file system or the network: `imgpipe validate` and the coordinator call it.
ImageDefinition parseDefinition(std::string_view yamlText, const std::string& sourceName);
// The same over a reader (a merged definition's, whose mistakes name the layer they are in).
ImageDefinition parseDefinition(const YamlReader& doc);

// The `glance:` section alone, from a definition's root: what the Glance agent registers. It is
// the one reader of that section; parseDefinition uses it too.
GlanceSpec parseGlance(const YamlReader& definitionRoot);

// Reads and parses a definition file, with the layers it extends from beside it.
ImageDefinition loadDefinitionFile(const std::filesystem::path& path);

}  // namespace imgpipe::definition
