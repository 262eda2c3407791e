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

// The `glance:` section alone, from a definition's root: what the Glance agent registers. It is
// the one reader of that section; parseDefinition uses it too.
GlanceSpec parseGlance(const YamlReader& definitionRoot);

// Reads and parses a definition file.
ImageDefinition loadDefinitionFile(const std::filesystem::path& path);

// Checks what parseDefinition cannot: that the local files a definition refers to (file and
// script `source:`, repository `key_file:`, a `path:` base) exist, resolving relative paths
// against `baseDir`. Returns one message per problem (empty: all present).
std::vector<std::string> checkLocalReferences(const ImageDefinition& def,
                                              const std::filesystem::path& baseDir);

// Resolves a definition-relative path (absolute paths stay as they are).
std::filesystem::path resolveLocalPath(const std::string& path,
                                       const std::filesystem::path& baseDir);

}  // namespace imgpipe::definition
