// `extends:` layers: the merge rules of docs/image-definition.md, the origin of every field, the
// mistakes (a cycle, a missing layer, a path out of the bundle), and that the layers travel in
// the bundle and cannot be skipped by a reader.
#include "definition/layers.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>

#include "common/temp_dir.h"
#include "definition/bundle.h"
#include "definition/definition_json.h"
#include "definition/parse_definition.h"
#include "tests/support/error_of.h"

using namespace imgpipe;
using namespace imgpipe::definition;
namespace fs = std::filesystem;

namespace {

const std::string kBase = R"(name: web
description: the shared base
base: {path: base.qcow2}
disk: {size: 10G, compression: zlib}
mirrors:
  apt:
    sources:
      - {name: debian, uris: [http://deb.debian.org/debian], suites: [bookworm], components: [main]}
      - {name: security, uris: [http://deb.debian.org/debian-security], suites: [bookworm-security], components: [main]}
packages:
  install: [curl, nginx]
files:
  - {path: /etc/motd, content: "base\n"}
  - {path: /etc/issue, content: "issue\n"}
glance:
  visibility: private
  tags: [web]
  properties: {hw_disk_bus: virtio, site: none}
)";

using Files = std::map<std::string, std::string>;

LayerSource sourceOf(const Files& files) {
  return [files](const std::string& path) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
}

MergedDefinition mergeOf(const Files& files, const std::string& root = "site.yaml") {
  return MergedDefinition::merge(root, sourceOf(files));
}

using imgpipe::test::errorOf;

std::string originOf(const MergedDefinition& m, const std::string& field) {
  for (const auto& o : m.origins())
    if (o.field == field) return o.layer + ":" + std::to_string(o.line);
  return "(no such field)";
}

}  // namespace

TEST(Layers, MapsMergeByKeyAndTheLaterLayerWins) {
  auto m = mergeOf({{"base.yaml", kBase},
                    {"site.yaml",
                     "extends: base.yaml\n"
                     "disk: {size: 20G}\n"
                     "glance:\n"
                     "  properties: {site: berlin}\n"}});
  ASSERT_TRUE(m.layered());
  EXPECT_EQ(m.layers(), (std::vector<std::string>{"site.yaml", "base.yaml"}));
  auto def = parseDefinition(m.reader());
  EXPECT_EQ(def.name, "web");
  EXPECT_EQ(*def.disk.size, 20ull << 30);
  EXPECT_EQ(def.disk.compression, Compression::zlib);  // kept from the base
  EXPECT_EQ(def.glance.properties.at("site"), "berlin");
  EXPECT_EQ(def.glance.properties.at("hw_disk_bus"), "virtio");
  EXPECT_EQ(originOf(m, "disk.size"), "site.yaml:2");
  EXPECT_EQ(originOf(m, "disk.compression"), "base.yaml:4");
  EXPECT_EQ(originOf(m, "glance.properties.site"), "site.yaml:4");
  EXPECT_EQ(originOf(m, "glance.properties.hw_disk_bus"), "base.yaml:18");
  EXPECT_EQ(originOf(m, "name"), "base.yaml:1");
}

TEST(Layers, NamedListsMergeByNameOtherListsReplace) {
  auto m = mergeOf({{"base.yaml", kBase},
                    {"site.yaml",
                     "extends: base.yaml\n"
                     "mirrors:\n"
                     "  apt:\n"
                     "    sources:\n"
                     "      - {name: debian, uris: [http://mirror.site/debian], "
                     "suites: [bookworm], components: [main]}\n"
                     "      - {name: site, uris: [http://mirror.site/tools], "
                     "suites: [stable], components: [main]}\n"
                     "packages: {install: [htop]}\n"
                     "files:\n"
                     "  - {path: /etc/motd, content: \"site\\n\"}\n"}});
  auto def = parseDefinition(m.reader());
  const auto& sources = def.mirrors.apt->sources;
  ASSERT_EQ(sources.size(), 3u);
  EXPECT_EQ(sources[0].name, "debian");  // replaced in place
  EXPECT_EQ(sources[0].uris, (std::vector<std::string>{"http://mirror.site/debian"}));
  EXPECT_EQ(sources[1].name, "security");                               // inherited
  EXPECT_EQ(sources[2].name, "site");                                   // appended
  EXPECT_EQ(def.packages.install, (std::vector<std::string>{"htop"}));  // a plain list replaces
  ASSERT_EQ(def.files.size(), 2u);
  EXPECT_EQ(def.files[0].path, "/etc/motd");
  EXPECT_EQ(def.files[0].content.text, "site\n");
  EXPECT_EQ(def.files[1].path, "/etc/issue");
  EXPECT_EQ(originOf(m, "mirrors.apt.sources[1].name"), "base.yaml:9");
  EXPECT_EQ(originOf(m, "mirrors.apt.sources[2].name"), "site.yaml:6");
  EXPECT_EQ(originOf(m, "files[1].content"), "base.yaml:14");
}

TEST(Layers, ResetDropsOrReplacesWithoutMerging) {
  auto m = mergeOf({{"base.yaml", kBase},
                    {"site.yaml",
                     "extends: base.yaml\n"
                     "description: !reset\n"
                     "glance:\n"
                     "  tags: !reset\n"
                     "  properties: !reset {site: oslo}\n"
                     "files: !reset [{path: /etc/hostname-hint, content: x}]\n"}});
  auto def = parseDefinition(m.reader());
  EXPECT_EQ(def.description, "");
  EXPECT_TRUE(def.glance.tags.empty());
  EXPECT_EQ(def.glance.properties, (std::map<std::string, std::string>{{"site", "oslo"}}));
  ASSERT_EQ(def.files.size(), 1u);
  EXPECT_EQ(def.files[0].path, "/etc/hostname-hint");
  EXPECT_EQ(m.text().find("!reset"), std::string::npos) << m.text();
}

TEST(Layers, AChainOfThreeAndTheMergedTextParsesAlike) {
  auto m = mergeOf({{"common.yaml", kBase},
                    {"base.yaml", "extends: common.yaml\npackages: {install: [curl]}\n"},
                    {"site.yaml", "extends: base.yaml\nversion: 1.2.3\n"}});
  EXPECT_EQ(m.layers(), (std::vector<std::string>{"site.yaml", "base.yaml", "common.yaml"}));
  auto fromReader = parseDefinition(m.reader());
  auto fromText = parseDefinition(m.text(), "site.yaml");
  EXPECT_EQ(toJson(fromReader).dump(), toJson(fromText).dump());
  EXPECT_EQ(fromReader.version, "1.2.3");
  EXPECT_EQ(fromReader.packages.install, (std::vector<std::string>{"curl"}));
}

TEST(Layers, ADefinitionWithoutLayersIsReadAsWritten) {
  auto m = mergeOf({{"site.yaml", kBase}});
  EXPECT_FALSE(m.layered());
  EXPECT_EQ(m.text(), kBase);
}

TEST(Layers, MistakesNameTheLayerAndLineTheyAreIn) {
  // A bad value inherited from the base is reported in the base, where it must be fixed.
  auto bad = mergeOf({{"base.yaml", "name: web\nbase: {path: base.qcow2}\ndisk: {size: lots}\n"},
                      {"site.yaml", "extends: base.yaml\nversion: '1'\n"}});
  auto e = errorOf([&] { parseDefinition(bad.reader()); });
  EXPECT_NE(e.find("base.yaml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("disk.size"), std::string::npos) << e;
  // An unknown key in the site layer is reported there.
  auto typo = mergeOf({{"base.yaml", kBase}, {"site.yaml", "extends: base.yaml\npakages: {}\n"}});
  e = errorOf([&] { parseDefinition(typo.reader()); });
  EXPECT_NE(e.find("site.yaml:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'pakages'"), std::string::npos) << e;
}

TEST(Layers, BrokenChainsAreRefused) {
  auto e = errorOf([] { mergeOf({{"site.yaml", "extends: base.yaml\n"}}); });
  EXPECT_NE(e.find("site.yaml:1: extends: 'base.yaml' is not there"), std::string::npos) << e;
  e = errorOf([] {
    mergeOf({{"site.yaml", "extends: a.yaml\n"},
             {"a.yaml", "extends: b.yaml\n"},
             {"b.yaml", "extends: site.yaml\n"}});
  });
  EXPECT_NE(e.find("'site.yaml' is already in the chain (site.yaml -> a.yaml -> b.yaml -> "
                   "site.yaml)"),
            std::string::npos)
      << e;
  for (const char* out : {"../base.yaml", "/etc/imgpipe/base.yaml", "a/../../b.yaml"}) {
    e = errorOf([&] { mergeOf({{"site.yaml", std::string("extends: ") + out + "\n"}}); });
    EXPECT_NE(e.find("is not a relative path of plain names"), std::string::npos) << e;
  }
  e = errorOf([] { mergeOf({{"site.yaml", "extends: [a.yaml, b.yaml]\n"}}); });
  EXPECT_NE(e.find("expected the path of the definition this one extends"), std::string::npos) << e;
  e = errorOf([] { mergeOf({{"site.yaml", "extends: base.yaml\n"}, {"base.yaml", "- a\n"}}); });
  EXPECT_NE(e.find("base.yaml: an image definition must be a YAML mapping"), std::string::npos)
      << e;
  Files deep{{"l0.yaml", kBase}};
  for (std::size_t i = 1; i <= kMaxLayers; ++i)
    deep["l" + std::to_string(i) + ".yaml"] = "extends: l" + std::to_string(i - 1) + ".yaml\n";
  e = errorOf([&] { mergeOf(deep, "l" + std::to_string(kMaxLayers) + ".yaml"); });
  EXPECT_NE(e.find("more than 8 layers"), std::string::npos) << e;
}

TEST(Layers, AReaderWithoutTheLayersCannotSkipThem) {
  auto e = errorOf([] { parseDefinition("extends: base.yaml\n" + kBase, "site.yaml"); });
  EXPECT_NE(e.find("read without its layers"), std::string::npos) << e;
}

TEST(Layers, TheLayersTravelInTheBundleAndTheirFilesToo) {
  TempDir dir;
  fs::create_directories(dir.path() / "files");
  std::ofstream(dir.path() / "base.yaml")
      << kBase << "scripts:\n  - {name: tune, source: files/tune.sh}\n";
  std::ofstream(dir.path() / "files/tune.sh") << "#!/bin/sh\ntrue\n";
  std::ofstream(dir.path() / "site.yaml") << "extends: base.yaml\nversion: '2'\n";
  auto bundle = loadBundle(dir.path() / "site.yaml");
  EXPECT_EQ(bundle.rootPath, "site.yaml");
  EXPECT_TRUE(bundle.find("base.yaml"));
  EXPECT_TRUE(bundle.find("files/tune.sh"));
  auto def = parseBundle(bundle);
  EXPECT_EQ(def.version, "2");
  ASSERT_EQ(def.scripts.size(), 1u);
  // The job's digest covers the base: a changed base is a different job.
  const auto digest = bundle.digest();
  std::ofstream(dir.path() / "base.yaml", std::ios::app) << "# changed\n";
  EXPECT_NE(loadBundle(dir.path() / "site.yaml").digest(), digest);
  // The coordinator and the build agent read the bundle only: a base missing from it is refused.
  bundle.files.erase("base.yaml");
  auto e = errorOf([&] { parseBundle(bundle); });
  EXPECT_NE(e.find("'base.yaml' is not there"), std::string::npos) << e;
  // loadDefinitionFile (the build agent's validate, the boot test) reads the layers too.
  EXPECT_EQ(loadDefinitionFile(dir.path() / "site.yaml").version, "2");
}

TEST(Layers, OneDefinitionOfABundleCarriesOnlyWhatItReadsAndItsIdentityIsItsMergedFields) {
  Bundle whole;
  whole.rootPath = "base.yaml";
  whole.files = {
      {"base.yaml", kBase + "scripts:\n  - {name: tune, source: files/tune.sh}\n"},
      {"files/tune.sh", "#!/bin/sh\ntrue\n"},
      {"files/site-b.sh", "#!/bin/sh\necho b\n"},
      // site-c only extends: the same fields as the base, written differently.
      {"site-c.yaml", "# site-c takes the base as it is\nextends: base.yaml\n"},
      {"site-b.yaml", "extends: base.yaml\nscripts:\n  - {name: b, source: files/site-b.sh}\n"},
  };
  const auto b = definitionBundle(whole, "site-b.yaml");
  EXPECT_EQ(b.rootPath, "site-b.yaml");
  std::vector<std::string> paths;
  for (const auto& [path, data] : b.files)
    paths.push_back(path);
  EXPECT_EQ(paths, (std::vector<std::string>{"base.yaml", "files/site-b.sh", "files/tune.sh",
                                             "site-b.yaml"}));
  const auto base = definitionBundle(whole, "base.yaml");
  EXPECT_EQ(base.files.size(), 2u);
  const auto c = definitionBundle(whole, "site-c.yaml");
  EXPECT_EQ(mergedIdentity(c), mergedIdentity(base)) << "same merged fields, same files";
  EXPECT_NE(mergedIdentity(b), mergedIdentity(base));
  // A file's content is part of it: the same fields over another tune.sh are another image.
  auto changed = whole;
  changed.files["files/tune.sh"] = "#!/bin/sh\nfalse\n";
  EXPECT_NE(mergedIdentity(definitionBundle(changed, "base.yaml")), mergedIdentity(base));
  auto e = errorOf([&] { definitionBundle(whole, "site-z.yaml"); });
  EXPECT_NE(e.find("site-z.yaml"), std::string::npos) << e;
}

// Issue 23: a few hundred bytes of nested aliases stood for billions of nodes, and the merge's
// walk held the coordinator's thread for minutes. Anchors and aliases are refused before any walk,
// by position, in a plain definition and in a layer alike; a deep chain of real layers is
// refused at kMaxLayers. Each answers well within a second.
TEST(Layers, AnchorsAndAliasesAreRefusedBeforeAnyWalk) {
  std::string bomb =
      "name: bomb\nbase: {path: base.qcow2}\nx0: &a0 [lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    const auto p = std::to_string(i - 1), n = std::to_string(i);
    bomb += "x" + n + ": &a" + n + " [*a" + p + ", *a" + p + ", *a" + p + ", *a" + p + ", *a" + p +
            ", *a" + p + "]\n";
  }
  ASSERT_LT(bomb.size(), 600u);
  const auto started = std::chrono::steady_clock::now();
  auto plain = errorOf([&] { mergeOf({{"site.yaml", bomb}}).reader(); });
  EXPECT_NE(plain.find("site.yaml:3:"), std::string::npos) << plain;
  EXPECT_NE(plain.find(": an anchor (&...): YAML anchors and aliases are not allowed"),
            std::string::npos)
      << plain;
  auto parsed = errorOf([&] { parseDefinition(bomb, "bomb.yaml"); });
  EXPECT_NE(parsed.find("bomb.yaml:3:"), std::string::npos) << parsed;
  EXPECT_NE(parsed.find("an anchor"), std::string::npos) << parsed;
  // As a layer under a definition that extends it.
  auto layered = errorOf([&] {
    mergeOf({{"site.yaml", "extends: bomb.yaml\nname: site\n"}, {"bomb.yaml", bomb}});
  });
  EXPECT_NE(layered.find("bomb.yaml:3:"), std::string::npos) << layered;
  EXPECT_NE(layered.find("an anchor"), std::string::npos) << layered;
  // An alias of an anchor-less node is not valid YAML; a merge key's alias is refused too.
  auto merge = errorOf([&] {
    mergeOf({{"site.yaml", "name: m\nbase: {path: b.qcow2}\ndisk: {<<: *d}\n"}}).reader();
  });
  EXPECT_NE(merge, "(no error)");
  // A stray flow token (found by fuzz_text): yaml-cpp's document loop never ended on it. Alone it
  // is refused naming the file; after a first document it is ignored, as YAML::Load ignores it.
  const auto stray = errorOf([&] { parseDefinition(",/", "stray.yaml"); });
  EXPECT_NE(stray.find("stray.yaml"), std::string::npos) << stray;
  EXPECT_EQ(errorOf([&] {
              mergeOf({{"site.yaml", "name: s\n---\n,/\n"}}).reader();
            }),
            "(no error)");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));

  // A chain of layers deeper than the limit: refused naming the limit, as fast.
  Files deep;
  for (int i = 0; i < 200; ++i)
    deep["l" + std::to_string(i) + ".yaml"] =
        "extends: l" + std::to_string(i + 1) + ".yaml\nname: n\n";
  deep["l200.yaml"] = "name: n\nbase: {path: b.qcow2}\n";
  const auto deepStarted = std::chrono::steady_clock::now();
  auto chain = errorOf([&] { mergeOf(deep, "l0.yaml"); });
  EXPECT_FALSE(chain.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - deepStarted, std::chrono::seconds(1));
}
