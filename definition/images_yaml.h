#pragma once

// A Packer-style `.images.yaml` (the marketplace seed's): one entry per image name, holding its
// OpenStack `metadata:` and a `build_override:` (disk_size, memory). `imgpipe
// import-images-yaml` turns each entry into an imgpipe definition, mapping what has a meaning
// here and reporting — never silently dropping — what has not.

#include <string>
#include <string_view>
#include <vector>

namespace imgpipe::definition {

// One entry, imported. Value type.
struct ImportedImage {
  std::string name;
  std::string definitionYaml;         // a complete definition; parseDefinition accepts it
  std::vector<std::string> mapped;    // "build_override.disk_size 50G -> disk.size"
  std::vector<std::string> reported;  // what has no meaning here, and why
};

// `baseYaml` is the definition's `base:` mapping as YAML ("{path: /srv/ubuntu-24.04.qcow2}").
// Throws YamlError naming file:line:col for a malformed file, Error naming the entry for one
// whose definition would not be valid (a reserved Glance name among its metadata, say).
std::vector<ImportedImage> importImagesYaml(std::string_view text, const std::string& source,
                                            const std::string& baseYaml);

}  // namespace imgpipe::definition
