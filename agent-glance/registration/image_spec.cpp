#include "agent-glance/registration/image_spec.h"

#include <cctype>

#include "agent-glance/glance/image.h"
#include "definition/parse_definition.h"

namespace imgpipe::glance {
namespace {

constexpr size_t kMaxGlanceString = 255;  // Glance's column size for names, keys, values, tags

}  // namespace

std::optional<definition::OlderVersions> parseOlderVersions(std::string_view text) {
  if (text == "keep") return definition::OlderVersions::keep;
  if (text == "hide") return definition::OlderVersions::hide;
  if (text == "rename") return definition::OlderVersions::rename;
  return std::nullopt;
}

ImageSpec imageSpecFrom(const std::string& name, const std::string& version,
                        const definition::GlanceSpec& g) {
  ImageSpec spec;
  spec.name = name;
  spec.version = version;
  spec.displayName =
      g.displayName.empty() ? (version.empty() ? name : name + " " + version) : g.displayName;
  spec.visibility = std::string(definition::toString(g.visibility));
  spec.minDiskGiB = g.minDiskGiB.value_or(0);
  spec.minRamMiB = g.minRamMiB.value_or(0);
  spec.tags = g.tags;
  spec.properties = g.allProperties();
  spec.protectedFlag = g.protected_;
  spec.olderVersions = g.olderVersions;
  validateImageSpec(spec);
  return spec;
}

ImageSpec parseImageSpec(const YamlReader& definition) {
  // The build agent's definition parser owns the glance: section; the rest of the definition is
  // the build's business and is not looked at here.
  return imageSpecFrom(definition.required<std::string>("name"),
                       definition.get<std::string>("version", ""),
                       definition::parseGlance(definition));
}

ImageSpec parseImageSpec(std::string_view definitionYaml, const std::string& sourceName) {
  return parseImageSpec(YamlReader::fromString(definitionYaml, sourceName));
}

void validateImageSpec(const ImageSpec& spec) {
  if (spec.name.empty()) throw Error("image name is empty");
  if (spec.displayName.size() > kMaxGlanceString)
    throw Error("display_name is longer than 255 characters");
  if (spec.visibility != "private" && spec.visibility != "shared" &&
      spec.visibility != "community" && spec.visibility != "public")
    throw Error("visibility '" + spec.visibility +
                "' is not one of private, shared, community, public");
  for (const auto& tag : spec.tags) {
    if (tag.empty()) throw Error("tags: empty tag");
    if (tag.size() > kMaxGlanceString)
      throw Error("tags: '" + tag.substr(0, 40) + "...' is longer than 255 characters");
  }
  for (const auto& [key, value] : spec.properties) {
    if (key.empty()) throw Error("properties: empty property name");
    if (key.size() > kMaxGlanceString)
      throw Error("properties: name '" + key.substr(0, 40) + "...' is longer than 255 characters");
    if (value.size() > kMaxGlanceString)
      throw Error("properties." + key + ": value is longer than 255 characters");
    if (isCoreAttribute(key))
      throw Error("properties." + key + ": '" + key +
                  "' is a Glance image attribute, not a custom property (set it with the "
                  "glance section's own fields, or leave it to Glance)");
    if (key.starts_with("imgpipe_"))
      throw Error("properties." + key +
                  ": the imgpipe_ prefix is reserved for imgpipe's own "
                  "provenance properties");
  }
}

std::map<std::string, std::string> glanceProperties(const ImageSpec& spec,
                                                    const Provenance& provenance) {
  auto props = spec.properties;
  props["imgpipe_build_id"] = provenance.buildId;
  props["imgpipe_image"] = spec.name;
  if (!spec.version.empty()) props["imgpipe_version"] = spec.version;
  if (!provenance.sha256.empty()) props["imgpipe_sha256"] = provenance.sha256;
  if (!provenance.manifestDigest.empty())
    props["imgpipe_manifest_digest"] = provenance.manifestDigest;
  return props;
}

int compareVersions(std::string_view a, std::string_view b) {
  auto isDigit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isDigit(a[i]) && isDigit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && isDigit(a[ie]))
        ++ie;
      while (je < b.size() && isDigit(b[je]))
        ++je;
      // Compare as numbers without overflow: skip leading zeros, then length, then digits.
      auto na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      while (na.size() > 1 && na.front() == '0')
        na.remove_prefix(1);
      while (nb.size() > 1 && nb.front() == '0')
        nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
      if (int c = na.compare(nb); c != 0) return c < 0 ? -1 : 1;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
      ++i;
      ++j;
    }
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return 0;
}

}  // namespace imgpipe::glance
