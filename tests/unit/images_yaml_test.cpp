// A Packer-style .images.yaml (the marketplace seed's) turned into definitions (issue 13):
// metadata to glance.metadata, build_override.disk_size to disk.size, the rest reported.
#include "definition/images_yaml.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/yaml_reader.h"
#include "definition/parse_definition.h"

using namespace imgpipe;
using namespace imgpipe::definition;

namespace {

// The seed's own example, comments and all.
constexpr const char* kSeed = R"(xaas-service-name:
  # Image OpenStack metadata
  metadata:
    os_admin_user: 'ubuntu'           # Default admin username
    os_distro: ubuntu2404             # Distribution identifier
    os_version: '24'                  # OS version as string
    os_type: 'linux'                  # Always 'linux' for Linux
    mcs_name: xaas-service-name       # VK Cloud marketplace name
    mcs_os_type: 'linux'              # Always 'linux'
    mcs_os_distro: 'ubuntu'           # Distribution for marketplace
    mcs_os_version: '24'              # Version for marketplace
    hw_qemu_guest_agent: 'yes'        # Required for VK Cloud
    os_require_quiesce: 'yes'         # Required for snapshots
    team: 'xaas'                      # Team identifier
    sid: 'hidden'                     # Service ID or 'hidden'

  # Packer build overrides (optional)
  build_override:
    disk_size: 50G                    # Override default disk size
xaas-large-service:
  metadata:
    os_admin_user: 'ubuntu'
  build_override:
    disk_size: 100G    # Increase from default 10G
    memory: 4096       # Increase RAM for build
)";

}  // namespace

TEST(ImagesYaml, EachEntryBecomesAValidDefinition) {
  auto images = importImagesYaml(kSeed, ".images.yaml", "{path: /srv/noble.qcow2}");
  ASSERT_EQ(images.size(), 2u);
  auto def = parseDefinition(images[0].definitionYaml, "x.yaml");
  EXPECT_EQ(def.name, "xaas-service-name");
  EXPECT_EQ(def.disk.size, std::optional<std::uint64_t>(50ull << 30));
  EXPECT_EQ(def.glance.metadata.size(), 12u);
  EXPECT_EQ(def.glance.metadata.at("os_version"), "24");
  EXPECT_EQ(def.glance.metadata.at("hw_qemu_guest_agent"), "yes");
  EXPECT_EQ(baseKind(def.base), "path");
  EXPECT_TRUE(images[0].reported.empty());

  auto large = parseDefinition(images[1].definitionYaml, "y.yaml");
  EXPECT_EQ(large.disk.size, std::optional<std::uint64_t>(100ull << 30));
  ASSERT_EQ(images[1].reported.size(), 1u);
  EXPECT_NE(images[1].reported[0].find("build_override.memory 4096"), std::string::npos);
}

TEST(ImagesYaml, MistakesAreNamedNotDropped) {
  const std::string base = "{path: /srv/noble.qcow2}";
  auto unknown = importImagesYaml("a:\n  metadata: {k: v}\n  provisioner: x\n", "i.yaml", base);
  ASSERT_EQ(unknown[0].reported.size(), 1u);
  EXPECT_NE(unknown[0].reported[0].find("a.provisioner"), std::string::npos);
  try {
    importImagesYaml("a:\n  metadata: {visibility: public}\n", "i.yaml", base);
    ADD_FAILURE() << "a reserved Glance name was imported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("entry 'a'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reserved"), std::string::npos) << e.what();
  }
  EXPECT_THROW(importImagesYaml("a:\n  build_override: {disk_size: fifty}\n", "i.yaml", base),
               YamlError);
  EXPECT_THROW(importImagesYaml("- a\n", "i.yaml", base), YamlError);
  EXPECT_THROW(importImagesYaml("{}\n", "i.yaml", base), YamlError);
}
