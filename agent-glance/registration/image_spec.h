#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/yaml_reader.h"
#include "definition/image_definition.h"

namespace imgpipe::glance {

// What to do with the other images of the same name once a new version is active: the image
// definition's `older_versions:` (definition::OlderVersions), which the agent's config defaults.
//   keep    leave them as they are
//   hide    set os_hidden=true: still bootable by id, no longer listed by default
//   rename  append " (old)" to their name
std::optional<definition::OlderVersions> parseOlderVersions(std::string_view text);

// The Glance side of an image definition. Value type.
struct ImageSpec {
  std::string name;                    // the definition's image name ("debian-12-docker")
  std::string version;                 // "2026.11.22-1"
  std::string displayName;             // the Glance image name; default "<name> <version>"
  std::string visibility = "private";  // private | shared | community | public
  std::uint64_t minDiskGiB = 0;
  std::uint64_t minRamMiB = 0;
  std::vector<std::string> tags;
  // The `.images.yaml` metadata block as-is, with `properties` laid over it (same key: the
  // property wins). Values are Glance strings, written as in the YAML ('yes' stays "yes").
  std::map<std::string, std::string> properties;
  bool protectedFlag = false;
  std::optional<definition::OlderVersions> olderVersions;  // unset: the agent's configured default
};

// Reads `name`, `version` and the `glance:` section of an image definition, through the build
// agent's parser of that section (definition::parseGlance: one reader, one set of rules). Unknown
// keys inside `glance:` are errors; so are values Glance would refuse (see validateImageSpec).
// min_disk 0 means "not set": the registrar uses the image's virtual size, rounded up.
ImageSpec parseImageSpec(const YamlReader& definition);
ImageSpec parseImageSpec(std::string_view definitionYaml, const std::string& sourceName);
ImageSpec imageSpecFrom(const std::string& name, const std::string& version,
                        const definition::GlanceSpec& glance);

// Throws Error naming the field and value for what Glance would refuse later: an unknown
// visibility, a property that is a core attribute (name, visibility, os_hash_value, ...) or
// uses imgpipe's own "imgpipe_" prefix, empty keys, keys/values/tags over 255 characters.
void validateImageSpec(const ImageSpec& spec);

// Where an image came from; imgpipe records it as properties so that every image in Glance can
// be traced back to its build.
struct Provenance {
  std::string buildId;
  std::string sha256;          // hex of the artifact (the artifact id)
  std::string manifestDigest;  // digest of the transfer manifest, if known
};

// The custom properties of the image: the spec's, plus imgpipe's own:
//   imgpipe_build_id         the build (the image id is derived from it)
//   imgpipe_image            the definition's image name (finds older versions)
//   imgpipe_version          the definition's version (orders versions)
//   imgpipe_sha256           SHA-256 of the uploaded file (Glance itself reports SHA-512)
//   imgpipe_manifest_digest  the transfer manifest the artifact was verified against
std::map<std::string, std::string> glanceProperties(const ImageSpec& spec,
                                                    const Provenance& provenance);

// Orders version strings naturally: digit runs compare as numbers, the rest as text, so
// "2026.11.22-10" > "2026.11.22-9" > "2026.2.1". Returns <0, 0, >0.
int compareVersions(std::string_view a, std::string_view b);

}  // namespace imgpipe::glance
