#include "definition/layers.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

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
      out.force_insert(kv.first, stripResets(kv.second));  // the keys are the map's own: unique
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
  // yaml-cpp finds a key of a map by a linear search, so `out[key]` per key made a merge
  // quadratic in a map's size (a 1 MiB layer holds tens of thousands of keys): both maps are
  // indexed once and the result is built with force_insert, linear in their sizes. Inherited
  // keys keep their place and take the merged value; new keys follow in the layer's order.
  YAML::Node mergeMaps(const YAML::Node& base, const YAML::Node& over, const std::string& path,
                       const std::string& layer) {
    std::unordered_map<std::string, YAML::Node> overByKey;
    std::vector<YAML::Node> overOrder;  // the key nodes: their marks name the line in messages
    for (const auto& kv : over) {
      std::string key = kv.first.Scalar();
      if (path.empty() && key == kExtends) continue;
      if (!overByKey.contains(key)) overOrder.push_back(kv.first);
      overByKey[key] = kv.second;  // a key written twice: the later one, as YAML::Load reads it
    }
    YAML::Node out(YAML::NodeType::Map);
    std::unordered_set<std::string> inherited;
    for (const auto& kv : base) {
      const std::string key = kv.first.Scalar();
      inherited.insert(key);
      const auto o = overByKey.find(key);
      if (o == overByKey.end()) {
        out.force_insert(kv.first, kv.second);
      } else if (auto merged = merge(kv.second, o->second, childPath(path, key), layer)) {
        out.force_insert(kv.first, *merged);
      }
    }
    for (const auto& keyNode : overOrder) {
      const std::string key = keyNode.Scalar();
      if (inherited.contains(key)) continue;
      const YAML::Node& value = overByKey.at(key);
      if (!(isReset(value) && isEmpty(value)))
        out.force_insert(keyNode, take(value, childPath(path, key), layer));
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
    // Indexed by name: a search per element made merging two long lists quadratic.
    std::vector<Element> elements;
    std::unordered_map<std::string, std::size_t> byName;  // the first element of each name
    auto add = [&](const YAML::Node& item, std::string from) {
      auto name = nameOf(item);
      if (name) {
        if (auto same = byName.find(*name); same != byName.end()) {
          elements[same->second] = {item, std::move(from)};
          return;
        }
        byName.emplace(std::move(*name), elements.size());
      }
      elements.push_back({item, std::move(from)});
    };
    std::size_t i = 0;
    for (const auto& item : base) {
      // Two elements of one name in one list stay two, as before: only a later layer replaces.
      auto name = nameOf(item);
      if (name) byName.emplace(std::move(*name), elements.size());
      elements.push_back({item, originOf(itemPath(path, i++))});
    }
    for (const auto& item : over)
      add(item, layer);
    forget(path);
    origins_[path] = layer;
    YAML::Node out(YAML::NodeType::Sequence);
    for (std::size_t j = 0; j < elements.size(); ++j) {
      out.push_back(stripResets(elements[j].node));
      origins_[itemPath(path, j)] = elements[j].layer;
    }
    return out;
  }

  // Drops what was recorded beneath `path` (its value is being replaced): `path` itself and the
  // ranges `path.` and `path[`, each holding only what lies beneath, so that siblings sharing a
  // prefix (`k1`, `k10`, `k100`, ...) are never walked.
  void forget(const std::string& path) {
    if (path.empty()) {
      origins_.clear();
      return;
    }
    origins_.erase(path);
    for (const char sep : {'.', '['}) {
      const std::string prefix = path + sep;
      auto it = origins_.lower_bound(prefix);
      while (it != origins_.end() && it->first.starts_with(prefix))
        it = origins_.erase(it);
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
