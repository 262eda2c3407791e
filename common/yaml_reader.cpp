#include "common/yaml_reader.h"

#include <limits>

#include "common/field_origins.h"
#include "common/file_util.h"
#include "common/units.h"

namespace imgpipe {

YamlReader::YamlReader(YAML::Node node, std::shared_ptr<const std::string> source, std::string path,
                       YAML::Mark mark)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)), mark_(mark) {}

YamlReader YamlReader::fromFile(const std::filesystem::path& path) {
  std::string text;
  try {
    text = readFile(path);
  } catch (const Error& e) {
    throw YamlError(e.what());
  }
  auto reader = fromString(text, path.string());
  reader.baseDir_ = std::filesystem::absolute(path).parent_path();
  return reader;
}

YamlReader YamlReader::fromString(std::string_view text, std::string sourceName) {
  auto source = std::make_shared<const std::string>(std::move(sourceName));
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return YamlReader(root, source, "", root.Mark());
  } catch (const YAML::ParserException& e) {
    throw YamlError(*source + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
}

YamlReader YamlReader::fromNode(
    YAML::Node root, std::string sourceName,
    std::shared_ptr<const std::map<std::string, std::string>> originByPath) {
  YamlReader r(root, std::make_shared<const std::string>(std::move(sourceName)), "", root.Mark());
  r.origins_ = std::move(originByPath);
  return r;
}

YamlReader YamlReader::child(YAML::Node node, std::string path, YAML::Mark mark) const {
  YamlReader c(std::move(node), source_, std::move(path), mark);
  c.baseDir_ = baseDir_;
  c.origins_ = origins_;
  return c;
}

std::string YamlReader::where() const {
  std::string w = *source_;
  if (origins_)
    if (const auto* file = originOf(*origins_, path_)) w = *file;
  if (!mark_.is_null())
    w += ":" + std::to_string(mark_.line + 1) + ":" + std::to_string(mark_.column + 1);
  w += ": ";
  if (!path_.empty()) w += path_ + ": ";
  return w;
}

void YamlReader::fail(std::string_view message) const {
  throw YamlError(where() + std::string(message));
}

std::string YamlReader::childPath(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool YamlReader::has(std::string_view key) const {
  if (!isMap()) return false;
  const YAML::Node& self = node_;
  const YAML::Node found = self[std::string(key)];
  return found && !found.IsNull();
}

YamlReader YamlReader::at(std::string_view key) const {
  if (!isNull() && !isMap()) fail("expected a mapping with key '" + std::string(key) + "'");
  read_->insert(std::string(key));
  // A missing key yields a yaml-cpp "zombie" node that throws on assignment and most queries,
  // so it is replaced by a real null node before it is stored anywhere.
  const YAML::Node& self = node_;
  const YAML::Node found = isMap() ? self[std::string(key)] : YAML::Node(YAML::NodeType::Null);
  return found ? child(found, childPath(key), found.Mark().is_null() ? mark_ : found.Mark())
               : child(YAML::Node(YAML::NodeType::Null), childPath(key), mark_);
}

YamlReader YamlReader::require(std::string_view key) const {
  auto c = at(key);
  if (c.isNull()) {
    YamlReader parentView = *this;
    parentView.fail("missing required field '" + std::string(key) + "'");
  }
  return c;
}

template <>
std::string YamlReader::as<std::string>() const {
  if (!isScalar()) fail("expected a text value");
  return node_.Scalar();
}

template <>
bool YamlReader::as<bool>() const {
  if (isScalar()) {
    bool v;
    if (YAML::convert<bool>::decode(node_, v)) return v;
  }
  fail("expected true or false, got '" +
       (isScalar() ? node_.Scalar() : std::string("<non-scalar>")) + "'");
}

template <>
std::int64_t YamlReader::as<std::int64_t>() const {
  if (isScalar()) {
    try {
      size_t used = 0;
      long long v = std::stoll(node_.Scalar(), &used, 10);
      if (used == node_.Scalar().size()) return v;
    } catch (const std::exception&) {
    }
  }
  fail("expected a whole number, got '" +
       (isScalar() ? node_.Scalar() : std::string("<non-scalar>")) + "'");
}

template <>
std::uint64_t YamlReader::as<std::uint64_t>() const {
  auto v = as<std::int64_t>();
  if (v < 0) fail("expected a non-negative number, got " + std::to_string(v));
  return static_cast<std::uint64_t>(v);
}

template <>
int YamlReader::as<int>() const {
  auto v = as<std::int64_t>();
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    fail("number out of range: " + std::to_string(v));
  return static_cast<int>(v);
}

template <>
unsigned YamlReader::as<unsigned>() const {
  auto v = as<std::uint64_t>();
  if (v > std::numeric_limits<unsigned>::max()) fail("number out of range: " + std::to_string(v));
  return static_cast<unsigned>(v);
}

template <>
double YamlReader::as<double>() const {
  if (isScalar()) {
    try {
      size_t used = 0;
      double v = std::stod(node_.Scalar(), &used);
      if (used == node_.Scalar().size()) return v;
    } catch (const std::exception&) {
    }
  }
  fail("expected a number");
}

std::filesystem::path YamlReader::asPath() const {
  std::filesystem::path p = as<std::string>();
  if (p.empty()) fail("expected a path, got an empty string");
  return p.is_relative() && !baseDir_.empty() ? baseDir_ / p : p;
}

std::uint64_t YamlReader::asSize() const {
  try {
    return parseSize(as<std::string>());
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    fail(e.what());
  }
}

std::chrono::milliseconds YamlReader::asDuration() const {
  try {
    return parseDuration(as<std::string>());
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    fail(e.what());
  }
}

std::uint64_t YamlReader::asRate() const {
  try {
    return parseRate(as<std::string>());
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    fail(e.what());
  }
}

std::vector<std::string> YamlReader::asStringList() const {
  if (isNull()) return {};
  if (isScalar()) return {node_.Scalar()};
  std::vector<std::string> out;
  for (auto& item : items())
    out.push_back(item.as<std::string>());
  return out;
}

std::vector<YamlReader> YamlReader::items() const {
  if (isNull()) return {};
  if (!isSequence()) fail("expected a list");
  std::vector<YamlReader> out;
  size_t i = 0;
  for (const auto& child : node_) {
    out.push_back(this->child(child, path_ + "[" + std::to_string(i++) + "]",
                              child.Mark().is_null() ? mark_ : child.Mark()));
  }
  return out;
}

std::vector<std::pair<std::string, YamlReader>> YamlReader::entries() const {
  if (isNull()) return {};
  if (!isMap()) fail("expected a mapping");
  std::vector<std::pair<std::string, YamlReader>> out;
  for (const auto& kv : node_) {
    std::string key = kv.first.Scalar();
    read_->insert(key);
    out.emplace_back(key, child(kv.second, childPath(key),
                                kv.second.Mark().is_null() ? kv.first.Mark() : kv.second.Mark()));
  }
  return out;
}

void YamlReader::rejectUnknownKeys() const {
  if (!isMap()) return;
  for (const auto& kv : node_) {
    const std::string key = kv.first.Scalar();
    if (read_->count(key)) continue;
    std::string known;
    for (const auto& k : *read_)
      known += (known.empty() ? "" : ", ") + k;
    YamlReader keyView = child(kv.first, path_, kv.first.Mark());
    keyView.fail("unknown key '" + key + "'" +
                 (known.empty() ? "" : " (known keys: " + known + ")"));
  }
}

}  // namespace imgpipe
