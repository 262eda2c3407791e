#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace imgpipe {

// A mistake in a YAML document: "<file>:<line>:<col>: <field path>: <what is wrong>".
class YamlError : public Error {
 public:
  using Error::Error;
};

// A strict, position-aware view of one YAML node. Every key a consumer reads is remembered, so
// rejectUnknownKeys() can refuse a typo ("unknown key 'pakages'") instead of ignoring it — the
// osbuild lesson: unknown options are refused at start-up, not discovered at run time.
// Copies share the record of read keys.
class YamlReader {
 public:
  static YamlReader fromFile(const std::filesystem::path& path);
  static YamlReader fromString(std::string_view text, std::string sourceName);
  // A document assembled from several files (a definition's layers): `originByPath` names the
  // file each field path came from ("packages.install" -> "base.yaml"); a mistake is reported
  // against the file of the longest recorded prefix of its path, at the node's own position.
  static YamlReader fromNode(
      YAML::Node root, std::string sourceName,
      std::shared_ptr<const std::map<std::string, std::string>> originByPath);

  const std::string& path() const { return path_; }  // "packages.install[2]"; "" at the root
  const std::string& source() const { return *source_; }
  bool isNull() const { return !node_ || node_.IsNull(); }
  bool isMap() const { return node_ && node_.IsMap(); }
  bool isSequence() const { return node_ && node_.IsSequence(); }
  bool isScalar() const { return node_ && node_.IsScalar(); }

  bool has(std::string_view key) const;
  // The child at `key` (marked as read); a null reader when absent.
  YamlReader at(std::string_view key) const;
  YamlReader require(std::string_view key) const;  // fails when absent or null

  template <typename T>
  T as() const;
  template <typename T>
  T get(std::string_view key, T fallback) const {
    auto c = at(key);
    return c.isNull() ? std::move(fallback) : c.as<T>();
  }
  template <typename T>
  std::optional<T> optional(std::string_view key) const {
    auto c = at(key);
    if (c.isNull()) return std::nullopt;
    return c.as<T>();
  }
  template <typename T>
  T required(std::string_view key) const {
    return require(key).as<T>();
  }

  // A path; a relative one is taken relative to the directory of the file it was read from, so a
  // config can name its neighbours ("keys/agent.key") wherever it is started from.
  std::filesystem::path asPath() const;
  std::filesystem::path getPath(std::string_view key, const std::filesystem::path& fallback) const {
    auto c = at(key);
    return c.isNull() ? fallback : c.asPath();
  }
  std::uint64_t asSize() const;                   // "10G"
  std::chrono::milliseconds asDuration() const;   // "500ms"
  std::uint64_t asRate() const;                   // "40mbit"
  std::vector<std::string> asStringList() const;  // a sequence of scalars (or one scalar)

  // Elements of a sequence (empty for null); fails on a non-sequence.
  std::vector<YamlReader> items() const;
  // Entries of a free-form map (keys are data, not schema), in document order.
  std::vector<std::pair<std::string, YamlReader>> entries() const;

  [[noreturn]] void fail(std::string_view message) const;
  // Fails on the first key of this map that no consumer read, listing the keys it knows.
  void rejectUnknownKeys() const;

 private:
  YamlReader(YAML::Node node, std::shared_ptr<const std::string> source, std::string path,
             YAML::Mark mark);
  std::string where() const;
  std::string childPath(std::string_view key) const;
  YamlReader child(YAML::Node node, std::string path, YAML::Mark mark) const;

  YAML::Node node_;
  std::shared_ptr<const std::string> source_;
  std::string path_;
  std::filesystem::path baseDir_;  // of the source file; empty for strings
  YAML::Mark mark_;  // position of this node, or of its parent when the node is absent
  std::shared_ptr<const std::map<std::string, std::string>> origins_;  // see fromNode
  std::shared_ptr<std::set<std::string>> read_ = std::make_shared<std::set<std::string>>();
};

template <>
std::string YamlReader::as<std::string>() const;
template <>
bool YamlReader::as<bool>() const;
template <>
std::int64_t YamlReader::as<std::int64_t>() const;
template <>
std::uint64_t YamlReader::as<std::uint64_t>() const;
template <>
int YamlReader::as<int>() const;
template <>
unsigned YamlReader::as<unsigned>() const;
template <>
double YamlReader::as<double>() const;

}  // namespace imgpipe
