// What a definition may say about the build host (issue 9): `network:` is strict, and paths are
// normalised once, before any reserved-path check, so `/./proc/x`, `//sys/x` and `/dev/` meet
// the same checks as `/proc/x`, `/sys/x` and `/dev`.
#include <gtest/gtest.h>

#include "common/yaml_reader.h"
#include "definition/definition_json.h"
#include "definition/parse_definition.h"
#include "tests/build/support/definition_error.h"

using namespace imgpipe;

namespace {

using build::test::definitionError;

std::string withFile(const std::string& path) {
  return "name: x\nbase: {path: /a}\nfiles:\n  - path: '" + path + "'\n    content: hi\n";
}

std::string withRemove(const std::string& path) {
  return "name: x\nbase: {path: /a}\ncleanup:\n  remove: ['" + path + "']\n";
}

}  // namespace

TEST(DefinitionIsolation, NetworkIsHostByDefaultNoneOnRequestAndStrict) {
  auto def = definition::parseDefinition("name: x\nbase: {path: /a}\n", "def.yaml");
  EXPECT_EQ(def.network, definition::Network::host);
  EXPECT_FALSE(definition::toJson(def).contains("network"))
      << "the default must not change the content digest of existing definitions";

  def = definition::parseDefinition("name: x\nbase: {path: /a}\nnetwork: none\n", "def.yaml");
  EXPECT_EQ(def.network, definition::Network::none);
  EXPECT_EQ(definition::toJson(def).at("network"), "none");
  EXPECT_NE(definition::summarize(def).find("network"), std::string::npos);

  EXPECT_EQ(definition::parseDefinition("name: x\nbase: {path: /a}\nnetwork: host\n", "d").network,
            definition::Network::host);
  def = definition::parseDefinition("name: x\nbase: {path: /a}\nnetwork: proxy\n", "def.yaml");
  EXPECT_EQ(def.network, definition::Network::proxy);
  EXPECT_EQ(definition::toJson(def).at("network"), "proxy");
  EXPECT_NE(definition::summarize(def).find("only the build agent's proxy"), std::string::npos);
  EXPECT_EQ(definitionError("name: x\nbase: {path: /a}\n\nnetwork: off\n"),
            "def.yaml:4:10: network: must be host, none or proxy, got 'off'");
  EXPECT_NE(definitionError("name: x\nbase: {path: /a}\nnetwork: [none]\n").find("def.yaml:3:"),
            std::string::npos);
}

TEST(DefinitionIsolation, FilePathsAreNormalisedBeforeTheReservedPathCheck) {
  for (const char* sneaky :
       {"/./proc/sys/vm/swappiness", "//proc/sys/vm/swappiness", "/proc//sys/vm/swappiness",
        "/././proc/./sys/vm/swappiness", "/proc"}) {
    const auto err = definitionError(withFile(sneaky));
    EXPECT_NE(err.find("files[0].path: '/proc"), std::string::npos) << sneaky << ": " << err;
    EXPECT_NE(err.find("is under /proc, which is not part of the image"), std::string::npos)
        << sneaky << ": " << err;
  }
  for (const char* sneaky : {"//sys/kernel/x", "/sys/./x", "/./dev/sda", "//run//x"})
    EXPECT_NE(definitionError(withFile(sneaky)).find("which is not part of the image"),
              std::string::npos)
        << sneaky;
  // Names that only start like an API filesystem are part of the image.
  auto def = definition::parseDefinition(withFile("//etc/./proc-names"), "def.yaml");
  EXPECT_EQ(def.files.at(0).path, "/etc/proc-names");
  def = definition::parseDefinition(withFile("/devices.conf"), "def.yaml");
  EXPECT_EQ(def.files.at(0).path, "/devices.conf");

  EXPECT_EQ(definitionError(withFile("/etc/motd/")),
            "def.yaml:4:11: files[0].path: names a directory; give "
            "the file's path");
  EXPECT_EQ(definitionError(withFile("/etc/motd/.")),
            "def.yaml:4:11: files[0].path: names a directory; give the file's path");
  EXPECT_EQ(definitionError(withFile("/etc/../proc/x")),
            "def.yaml:4:11: files[0].path: must not contain '..', got '/etc/../proc/x'");
  // Two spellings of one path are one path.
  EXPECT_NE(definitionError("name: x\nbase: {path: /a}\nfiles:\n  - {path: /etc/motd, content: a}\n"
                            "  - {path: //etc/./motd, content: b}\n")
                .find("'/etc/motd' is written twice"),
            std::string::npos);
}

TEST(DefinitionIsolation, CleanupPathsAreNormalisedBeforeTheWholeRootCheck) {
  for (const char* root : {"//", "/./", "/.", "///*", "/./*", "//*"})
    EXPECT_NE(
        definitionError(withRemove(root)).find("refusing to remove the whole root filesystem"),
        std::string::npos)
        << root;
  auto def = definition::parseDefinition(withRemove("//var/./log/*.gz/"), "def.yaml");
  EXPECT_EQ(def.cleanup.remove.at(0), "/var/log/*.gz");
  EXPECT_NE(definitionError(withRemove("/var/../../etc")).find("must not contain '..'"),
            std::string::npos);
}

TEST(DefinitionIsolation, OtherImagePathsAreStoredNormalised) {
  auto def = definition::parseDefinition(R"(name: x
base: {path: /a}
mirrors:
  apt:
    sources:
      - name: local
        uris: [http://mirror/debian]
        suites: [bookworm]
        components: [main]
        signed_by: //usr/share/keyrings/./local.gpg
  containerd:
    config_path: /etc/containerd/certs.d/
    registries: [{host: docker.io, mirrors: [{url: "https://mirror.example"}]}]
cloud_init:
  default_user: {shell: /bin//bash}
)",
                                         "def.yaml");
  EXPECT_EQ(def.mirrors.apt->sources.at(0).signedBy, "/usr/share/keyrings/local.gpg");
  EXPECT_EQ(def.mirrors.containerd->configPath, "/etc/containerd/certs.d");
  EXPECT_EQ(def.cloudInit.defaultUserShell, "/bin/bash");
}
