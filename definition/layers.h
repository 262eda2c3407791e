#pragma once

// `extends:`: a definition written as a layer over another (a site's mirrors and Glance
// properties over a shared base), merged before it is parsed. The rules, one owner for them:
//   - maps merge by key, the later layer (the one that extends) winning;
//   - lists of named things merge by name (files by path, scripts, mirror sources, repositories,
//     cloud-init drop-ins and boot checks by name, containerd registries by host): an element
//     with a name already inherited replaces it in place, a new name is appended;
//   - every other list, and every scalar, replaces the inherited value;
//   - `key: !reset` drops the inherited value; `key: !reset VALUE` replaces it without merging.
// Layer paths are bundle paths: relative to the directory of the definition that is submitted,
// as every other file a definition names, so a layer and its base travel in one bundle.

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/field_origins.h"
#include "common/yaml_reader.h"

namespace imgpipe::definition {

inline constexpr std::size_t kMaxLayers = 8;  // the root and up to seven it extends

// Reads a layer by its bundle path: its text, or nullopt when there is no such file.
using LayerSource = std::function<std::optional<std::string>(const std::string& bundlePath)>;

// Layers read from beneath `dir` (no '..', no symlink out of it), each at most `maxBytes`.
LayerSource layersBeneath(const std::filesystem::path& dir, std::size_t maxBytes);

// Where a field of the merged definition was written.
struct FieldOrigin {
  std::string field;  // "packages.install", "files[1].content"
  std::string layer;  // bundle path of its file
  int line = 0;       // 1-based; 0 when unknown
};

// One definition's layers, merged. Value type.
class MergedDefinition {
 public:
  // Reads `rootPath` and the chain it extends from `source` and merges it. Throws YamlError
  // naming the layer, line and field (a missing layer, a cycle, a chain longer than kMaxLayers,
  // a layer that is not a mapping); `displayName` stands for the root in messages.
  static MergedDefinition merge(const std::string& rootPath, const LayerSource& source,
                                const std::string& displayName = "");

  // The root first, then each layer it extends.
  const std::vector<std::string>& layers() const { return layers_; }
  bool layered() const { return layers_.size() > 1; }
  // The merged definition as YAML: the root's own text, unchanged, when it extends nothing.
  const std::string& text() const { return text_; }
  // The merged fields as YAML, without comments or the header: the same for two definitions
  // that merge to the same fields, however they were split into layers.
  std::string canonicalText() const;
  // A reader whose mistakes name the layer and line each value came from.
  YamlReader reader() const;
  // Every leaf field (a scalar, or a list of scalars) and where it came from, in document order.
  std::vector<FieldOrigin> origins() const;

 private:
  YAML::Node root_;
  std::string text_;
  std::string displayName_;
  std::vector<std::string> layers_;
  std::shared_ptr<FieldOrigins> originByPath_;
};

}  // namespace imgpipe::definition
