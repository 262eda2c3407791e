// `imgpipe validate`, the real binary: a definition that sets any of Glance's reserved names as
// a property is refused before anything is built (issue 10: it used to say valid, and
// registration failed at the end), naming the key and exiting with the usage code.
#include <gtest/gtest.h>

#include <fstream>

#include "common/temp_dir.h"
#include "definition/glance_names.h"
#include "tests/support/process.h"

using namespace imgpipe;

namespace {

test::CommandOutput validate(const std::filesystem::path& dir, const std::string& yaml) {
  const auto file = dir / "def.yaml";
  std::ofstream(file) << yaml;
  return test::run({(test::buildDir() / "bin/imgpipe").string(), "validate", file.string()});
}

}  // namespace

TEST(Validate, RefusesEveryReservedGlanceName) {
  TempDir dir;
  const std::string head = "name: a\nbase: {path: base.qcow2}\n";
  auto ok = validate(dir.path(), head + "glance: {properties: {hw_disk_bus: virtio}}\n");
  EXPECT_EQ(ok.exitCode, 0) << ok.err;
  for (const std::string key : {"id",
                                "name",
                                "status",
                                "visibility",
                                "protected",
                                "os_hidden",
                                "owner",
                                "size",
                                "virtual_size",
                                "checksum",
                                "os_hash_algo",
                                "os_hash_value",
                                "disk_format",
                                "container_format",
                                "min_disk",
                                "min_ram",
                                "tags",
                                "locations",
                                "direct_url",
                                "file",
                                "schema",
                                "self",
                                "created_at",
                                "updated_at",
                                "kernel_id",
                                "ramdisk_id",
                                "instance_uuid",
                                "os_glance_import_task",
                                "imgpipe_build_id",
                                "imgpipe_version"}) {
    ASSERT_TRUE(definition::reservedPropertyProblem(key)) << key << " is not in the table";
    for (const char* section : {"properties", "metadata"}) {
      auto r = validate(dir.path(), head + "glance: {" + section + ": {" + key + ": x}}\n");
      EXPECT_EQ(r.exitCode, 2) << section << "." << key << ": " << r.out << r.err;
      EXPECT_NE(r.err.find("'" + key + "'"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("reserved"), std::string::npos) << r.err;
    }
  }
}

// `imgpipe import-images-yaml`, the real binary: one definition per entry beside the file, each
// valid for `imgpipe validate`; what has no meaning here is said; nothing is overwritten unasked.
TEST(ImportImagesYaml, WritesValidDefinitionsAndReportsTheRest) {
  TempDir dir;
  std::ofstream(dir.path() / ".images.yaml")
      << "svc:\n  metadata: {os_distro: ubuntu2404, hw_qemu_guest_agent: 'yes'}\n"
         "  build_override: {disk_size: 50G, memory: 4096}\n";
  const auto cli = (test::buildDir() / "bin/imgpipe").string();
  auto r = test::run({cli, "import-images-yaml", (dir.path() / ".images.yaml").string(), "--base",
                      "debootstrap:bookworm"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("not used  build_override.memory 4096"), std::string::npos) << r.out;
  auto v = test::run({cli, "validate", (dir.path() / "svc.yaml").string()});
  EXPECT_EQ(v.exitCode, 0) << v.err;
  EXPECT_NE(v.out.find("50.0 GiB"), std::string::npos) << v.out;
  auto again = test::run({cli, "import-images-yaml", (dir.path() / ".images.yaml").string(),
                          "--base", "debootstrap:bookworm"});
  EXPECT_EQ(again.exitCode, 2);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  auto url = test::run({cli, "import-images-yaml", (dir.path() / ".images.yaml").string(), "--base",
                        "https://example.org/x.img", "--force"});
  EXPECT_EQ(url.exitCode, 2);
  EXPECT_NE(url.err.find("--base-sha256"), std::string::npos) << url.err;
}
