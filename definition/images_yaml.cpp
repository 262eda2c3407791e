#include "definition/images_yaml.h"

#include <yaml-cpp/yaml.h>

#include "common/error.h"
#include "common/yaml_reader.h"
#include "definition/parse_definition.h"

namespace imgpipe::definition {
namespace {

// The keys of a marketplace entry and of its build_override that mean nothing to imgpipe, with
// what to do instead.
std::string whyNotHere(std::string_view overrideKey) {
  if (overrideKey == "memory" || overrideKey == "cpus")
    return "imgpipe customizes the image without booting it; the acceptance boot's own size is "
           "validation.boot_test." +
           std::string(overrideKey == "memory" ? "memory" : "cpus (build.boot_test.cpus)");
  if (overrideKey == "headless" || overrideKey == "accelerator" || overrideKey == "boot_wait")
    return "a Packer VM setting; imgpipe starts no build VM";
  return "not an imgpipe setting";
}

}  // namespace

std::vector<ImportedImage> importImagesYaml(std::string_view text, const std::string& source,
                                            const std::string& baseYaml) {
  auto doc = YamlReader::fromString(text, source);
  if (!doc.isMap()) doc.fail("an .images.yaml must map image names to their settings");
  std::vector<ImportedImage> out;
  for (const auto& [name, entry] : doc.entries()) {
    ImportedImage img;
    img.name = name;
    if (!entry.isMap()) entry.fail("must be a mapping (metadata:, build_override:)");
    YAML::Emitter e;
    e << YAML::Comment("imported from " + source + " (" + name + ") by imgpipe import-images-yaml");
    e << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << name;
    e << YAML::Key << "base" << YAML::Value << YAML::Load(baseYaml);
    std::string diskSize;
    for (const auto& [key, value] : entry.entries()) {
      if (key == "metadata" || key == "build_override") continue;
      img.reported.push_back(name + "." + key + ": not an .images.yaml field imgpipe knows");
    }
    if (auto o = entry.at("build_override"); !o.isNull()) {
      if (!o.isMap()) o.fail("must be a mapping");
      for (const auto& [key, value] : o.entries()) {
        const std::string shown = value.isScalar() ? value.as<std::string>() : "(not a value)";
        if (key == "disk_size") {
          (void)value.asSize();  // fails naming the place for "50 gigs"
          diskSize = shown;
          img.mapped.push_back("build_override.disk_size " + shown + " -> disk.size");
        } else {
          img.reported.push_back("build_override." + key + " " + shown + ": " + whyNotHere(key));
        }
      }
    }
    if (!diskSize.empty()) {
      e << YAML::Key << "disk" << YAML::Value << YAML::BeginMap;
      e << YAML::Key << "size" << YAML::Value << diskSize << YAML::EndMap;
    }
    if (auto m = entry.at("metadata"); !m.isNull()) {
      if (!m.isMap()) m.fail("must be a mapping of property names to values");
      const auto entries = m.entries();
      e << YAML::Key << "glance" << YAML::Value << YAML::BeginMap;
      e << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
      for (const auto& [key, value] : entries) {
        if (!value.isScalar()) value.fail("must be a single value");
        // Quoted: 'yes', '24' and 'linux' stay the strings Glance stores.
        e << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value.as<std::string>();
      }
      e << YAML::EndMap << YAML::EndMap;
      img.mapped.push_back("metadata (" + std::to_string(entries.size()) +
                           (entries.size() == 1 ? " property" : " properties") +
                           ") -> glance.metadata");
    }
    e << YAML::EndMap;
    if (!e.good())
      throw Error(source + ": " + name + ": cannot write its definition: " + e.GetLastError());
    img.definitionYaml = std::string(e.c_str()) + "\n";
    try {
      (void)parseDefinition(img.definitionYaml, name + ".yaml");
    } catch (const Error& ex) {
      throw Error(source + ": entry '" + name + "' does not make a valid definition: " + ex.what());
    }
    out.push_back(std::move(img));
  }
  if (out.empty()) doc.fail("holds no images");
  return out;
}

}  // namespace imgpipe::definition
