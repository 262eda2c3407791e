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
