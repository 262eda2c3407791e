#include "definition/layers.h"

#include <algorithm>
#include <set>

#include "common/beneath.h"
#include "common/error.h"
#include "common/field_origins.h"
#include "definition/bundle.h"
#include "definition/yaml_aliases.h"

namespace imgpipe::definition {
namespace {

constexpr std::string_view kExtends = "extends";
constexpr std::string_view kReset = "!reset";

// The lists whose elements have a name, and the key that holds it (docs/image-definition.md).
struct NamedList {
  std::string_view path, key;
};
constexpr NamedList kNamedLists[] = {
    {"files", "path"},
    {"scripts", "name"},
    {"repositories", "name"},
    {"mirrors.apt.sources", "name"},
    {"mirrors.containerd.registries", "host"},
    {"cloud_init.drop_ins", "name"},
    {"validation.boot_test.checks", "name"},
};

std::optional<std::string_view> nameKeyOf(const std::string& path) {
  for (const auto& l : kNamedLists)
    if (l.path == path) return l.key;
  return std::nullopt;
}

std::string childPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string itemPath(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

std::string at(const std::string& layer, const YAML::Node& node) {
  const auto m = node.Mark();
  return m.is_null() ? layer : layer + ":" + std::to_string(m.line + 1);
}

bool isReset(const YAML::Node& n) {
  return n.Tag() == kReset;
}
bool isEmpty(const YAML::Node& n) {
  return n.IsNull() || (n.IsScalar() && n.Scalar().empty());
}

// `!reset` with nothing after it: the key is dropped. Nested inside a value that is taken whole,
// where there is nothing to drop, it is dropped as well; on a value, the tag is removed.
bool hasReset(const YAML::Node& n) {
  if (isReset(n)) return true;
  if (n.IsMap())
    return std::any_of(n.begin(), n.end(), [](const auto& kv) { return hasReset(kv.second); });
  if (n.IsSequence())
    return std::any_of(n.begin(), n.end(), [](const YAML::Node& i) { return hasReset(i); });
  return false;
}

// Rebuilds only what holds a `!reset`, so every other node keeps its position for messages.
YAML::Node stripResets(YAML::Node n) {
  if (!hasReset(n)) return n;
  if (isReset(n)) n.SetTag("");
  if (n.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : n) {
      if (isReset(kv.second) && isEmpty(kv.second)) continue;
      out[kv.first] = stripResets(kv.second);
    }
    return out;
  }
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& item : n)
      out.push_back(stripResets(item));
    return out;
  }
  return n;
}

class Merger {
 public:
  explicit Merger(std::map<std::string, std::string>& origins) : origins_(origins) {}

  // `over` (from `layer`) on top of `base`; nullopt when `over` drops the value.
  std::optional<YAML::Node> merge(const YAML::Node& base, const YAML::Node& over,
                                  const std::string& path, const std::string& layer) {
    if (isReset(over)) {
      if (isEmpty(over)) {
        forget(path);
        return std::nullopt;
      }
      return take(over, path, layer);
    }
    if (base.IsMap() && over.IsMap()) return mergeMaps(base, over, path, layer);
    if (base.IsSequence() && over.IsSequence())
      if (auto key = nameKeyOf(path)) return mergeNamed(base, over, *key, path, layer);
    return take(over, path, layer);
  }

  // The whole value comes from `layer`.
  YAML::Node take(const YAML::Node& value, const std::string& path, const std::string& layer) {
    forget(path);
    origins_[path] = layer;
    return stripResets(value);
  }

  std::string originOf(const std::string& path) const {
    const auto* file = imgpipe::originOf(origins_, path);
    return file ? *file : "";
  }

 private:
  YAML::Node mergeMaps(const YAML::Node& base, const YAML::Node& over, const std::string& path,
                       const std::string& layer) {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : base)
      out[kv.first] = kv.second;
    for (const auto& kv : over) {
      const std::string key = kv.first.Scalar();
      if (path.empty() && key == kExtends) continue;
      const std::string p = childPath(path, key);
      const YAML::Node& constOut = out;
      if (const YAML::Node inherited = constOut[key]) {
        auto merged = merge(inherited, kv.second, p, layer);
        if (merged)
          out[key] = *merged;
        else
          out.remove(key);
      } else if (!(isReset(kv.second) && isEmpty(kv.second))) {
        out[kv.first] = take(kv.second, p, layer);
      }
    }
    return out;
  }

  // By name: an inherited element keeps its place and takes the later layer's content; new
  // names are appended. An element without its name key is kept as written, for the parser to
  // report where it is.
  YAML::Node mergeNamed(const YAML::Node& base, const YAML::Node& over, std::string_view key,
                        const std::string& path, const std::string& layer) {
    auto nameOf = [&](const YAML::Node& item) -> std::optional<std::string> {
      if (!item.IsMap()) return std::nullopt;
      const YAML::Node& constItem = item;
      const YAML::Node n = constItem[std::string(key)];
      if (!n || !n.IsScalar()) return std::nullopt;
      return n.Scalar();
    };
    struct Element {
      YAML::Node node;
      std::string layer;
    };
    std::vector<Element> elements;
    std::size_t i = 0;
    for (const auto& item : base)
      elements.push_back({item, originOf(itemPath(path, i++))});
    for (const auto& item : over) {
      auto name = nameOf(item);
      auto same = std::find_if(elements.begin(), elements.end(),
                               [&](const Element& e) { return name && nameOf(e.node) == name; });
      if (same != elements.end())
        *same = {item, layer};
      else
        elements.push_back({item, layer});
    }
    forget(path);
    origins_[path] = layer;
    YAML::Node out(YAML::NodeType::Sequence);
    for (std::size_t j = 0; j < elements.size(); ++j) {
      out.push_back(stripResets(elements[j].node));
      origins_[itemPath(path, j)] = elements[j].layer;
    }
    return out;
  }

  // Drops what was recorded beneath `path` (its value is being replaced).
  void forget(const std::string& path) {
    for (auto it = origins_.lower_bound(path); it != origins_.end();) {
      const std::string& k = it->first;
      if (!k.starts_with(path)) break;
      const bool beneath =
          path.empty() || k.size() == path.size() || k[path.size()] == '.' || k[path.size()] == '[';
      it = beneath ? origins_.erase(it) : std::next(it);
    }
  }

  std::map<std::string, std::string>& origins_;
};

struct Layer {
  std::string path;  // bundle path
  std::string name;  // for messages: the path as the operator sees it
  YAML::Node root;
};

YAML::Node loadLayer(const std::string& text, const std::string& name) {
  refuseAnchorsAndAliases(text, name);
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap())
      throw YamlError(name + ": an image definition must be a YAML mapping (name, base, ...)");
    return root;
  } catch (const YAML::ParserException& e) {
    throw YamlError(name + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
}

void collectOrigins(const YAML::Node& n, const std::string& path, const FieldOrigins& origins,
                    std::vector<FieldOrigin>& out) {
  auto leaf = [&] {
    const auto m = n.Mark();
    const auto* file = originOf(origins, path);
    out.push_back({path, file ? *file : "", m.is_null() ? 0 : m.line + 1});
  };
  if (n.IsMap()) {
    for (const auto& kv : n)
      collectOrigins(kv.second, childPath(path, kv.first.Scalar()), origins, out);
  } else if (n.IsSequence() &&
             std::any_of(n.begin(), n.end(), [](const YAML::Node& i) { return !i.IsScalar(); })) {
    std::size_t i = 0;
    for (const auto& item : n)
      collectOrigins(item, itemPath(path, i++), origins, out);
  } else {
    leaf();
  }
}

}  // namespace

LayerSource layersBeneath(const std::filesystem::path& dir, std::size_t maxBytes) {
  return [dir, maxBytes](const std::string& path) -> std::optional<std::string> {
    std::error_code ec;
    if (!std::filesystem::exists(dir / path, ec)) return std::nullopt;
    return readFileBeneath(dir, path, maxBytes);
  };
}

MergedDefinition MergedDefinition::merge(const std::string& rootPath, const LayerSource& source,
                                         const std::string& displayName) {
  MergedDefinition m;
  m.displayName_ = displayName.empty() ? rootPath : displayName;
  m.originByPath_ = std::make_shared<std::map<std::string, std::string>>();
  // "deploy/examples/site.yaml" submitted as bundle path "site.yaml": its layers are named
  // "deploy/examples/<path>" in messages, as the operator finds them.
  std::string dirPrefix;
  if (m.displayName_.size() > rootPath.size() && m.displayName_.ends_with("/" + rootPath))
    dirPrefix = m.displayName_.substr(0, m.displayName_.size() - rootPath.size());
  auto rootText = source(rootPath);
  if (!rootText) throw YamlError(m.displayName_ + ": no such definition");

  std::vector<Layer> chain{{rootPath, m.displayName_, loadLayer(*rootText, m.displayName_)}};
  for (;;) {
    const Layer& last = chain.back();
    const YAML::Node& lastRoot = last.root;
    const YAML::Node ext = lastRoot[std::string(kExtends)];
    if (!ext || ext.IsNull()) break;
    const std::string where = at(last.name, ext) + ": extends: ";
    if (!ext.IsScalar())
      throw YamlError(where + "expected the path of the definition this one extends");
    auto next = normaliseBundlePath(ext.Scalar());
    if (!next)
      throw YamlError(where + "'" + ext.Scalar() +
                      "' is not a relative path of plain names beneath the submitted "
                      "definition's directory");
    std::string cycle;
    for (const auto& l : chain)
      cycle += l.path + " -> ";
    if (std::any_of(chain.begin(), chain.end(), [&](const Layer& l) { return l.path == *next; }))
      throw YamlError(where + "'" + *next + "' is already in the chain (" + cycle + *next + ")");
    if (chain.size() == kMaxLayers)
      throw YamlError(where + "more than " + std::to_string(kMaxLayers) + " layers (" + cycle +
                      *next + ")");
    std::optional<std::string> text;
    try {
      text = source(*next);
    } catch (const Error& e) {
      throw YamlError(where + e.what());
    }
    if (!text)
      throw YamlError(where + "'" + *next +
                      "' is not there (layers are read from beneath the submitted definition's "
                      "directory)");
    const std::string name = dirPrefix + *next;
    chain.push_back({*next, name, loadLayer(*text, name)});
  }
  for (const auto& l : chain)
    m.layers_.push_back(l.path);

  if (chain.size() == 1) {
    m.root_ = chain.front().root;
    m.text_ = *rootText;
    (*m.originByPath_)[""] = m.displayName_;
    return m;
  }
  // The deepest base first, each layer on top of what it extends.
  Merger merger(*m.originByPath_);
  YAML::Node merged = merger.take(YAML::Node(YAML::NodeType::Map), "", chain.back().name);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    merged = *merger.merge(merged, it->root, "", it->name);
  (*m.originByPath_)[""] = m.displayName_;
  m.root_ = merged;
  YAML::Emitter e;
  e << merged;
  std::string header = "# " + m.displayName_ + ", merged with the layers it extends:";
  for (std::size_t i = 1; i < chain.size(); ++i)
    header += " " + chain[i].path;
  m.text_ = header + "\n" + e.c_str() + "\n";
  return m;
}

std::string MergedDefinition::canonicalText() const {
  YAML::Emitter e;
  e << root_;
  return e.c_str();
}

YamlReader MergedDefinition::reader() const {
  if (!layered()) {
    refuseAnchorsAndAliases(text_, displayName_);
    return YamlReader::fromString(text_, displayName_);
  }
  return YamlReader::fromNode(root_, displayName_, originByPath_);
}

std::vector<FieldOrigin> MergedDefinition::origins() const {
  std::vector<FieldOrigin> out;
  collectOrigins(root_, "", *originByPath_, out);
  return out;
}

}  // namespace imgpipe::definition
