#include "common/yaml_reader.h"

#include <gtest/gtest.h>

using namespace imgpipe;

namespace {
std::string errorOf(auto&& fn) {
  try {
    fn();
  } catch (const YamlError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(YamlReader, ReadsTypedValuesWithDefaults) {
  auto doc = YamlReader::fromString("name: x\nsize: 10G\nflag: yes\nitems: [a, b]\n", "t.yaml");
  EXPECT_EQ(doc.required<std::string>("name"), "x");
  EXPECT_EQ(doc.require("size").asSize(), 10ull << 30);
  EXPECT_TRUE(doc.get("flag", false));
  EXPECT_EQ(doc.get<int>("missing", 7), 7);
  EXPECT_EQ(doc.at("items").asStringList(), (std::vector<std::string>{"a", "b"}));
  EXPECT_NO_THROW(doc.rejectUnknownKeys());
}

TEST(YamlReader, UnknownKeyNamesFileLineAndKnownKeys) {
  auto doc = YamlReader::fromString("name: x\npakages: [curl]\n", "def.yaml");
  doc.at("name");
  doc.at("packages");
  auto msg = errorOf([&] { doc.rejectUnknownKeys(); });
  EXPECT_NE(msg.find("def.yaml:2:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'pakages'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("packages"), std::string::npos) << msg;
}

TEST(YamlReader, WrongTypeNamesThePath) {
  auto doc = YamlReader::fromString("disk:\n  size: lots\n", "def.yaml");
  auto msg = errorOf([&] { doc.at("disk").require("size").asSize(); });
  EXPECT_NE(msg.find("def.yaml:2:9: disk.size: invalid size 'lots'"), std::string::npos) << msg;
}

TEST(YamlReader, MissingRequiredFieldIsNamed) {
  auto doc = YamlReader::fromString("a: 1\n", "c.yaml");
  auto msg = errorOf([&] { doc.required<std::string>("name"); });
  EXPECT_NE(msg.find("missing required field 'name'"), std::string::npos) << msg;
}

TEST(YamlReader, SyntaxErrorHasPosition) {
  auto msg = errorOf([] { YamlReader::fromString("a: [1, 2\nb: 3\n", "bad.yaml"); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid YAML"), std::string::npos) << msg;
}

TEST(YamlReader, ListItemsCarryIndexInPath) {
  auto doc = YamlReader::fromString("files:\n  - path: /a\n  - mode: x\n", "d.yaml");
  auto items = doc.at("files").items();
  ASSERT_EQ(items.size(), 2u);
  auto msg = errorOf([&] { items[1].required<std::string>("path"); });
  EXPECT_NE(msg.find("files[1]"), std::string::npos) << msg;
}
