// Disk bases beyond qcow2, made in the test from the fixture base: a raw.xz (as Fedora ships its
// cloud images), a Vagrant box of the virtualbox provider (a streamOptimized VMDK with
// metadata.json in a gzipped tar), a VDI and a VHDX. The raw.xz and the box are built into
// images that pass validation; the VDI and VHDX are resolved and probed. Hostile bases are
// refused before a byte of them is copied: a VMDK descriptor whose extent is a host file, a
// qcow2 with an external data file, a box with no disk, a format other than the definition says.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent-build/disk/qemu_img.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build::test;
using nlohmann::json;

namespace {

void sh(const std::string& script) {
  SubprocessOptions o;
  o.argv = {"bash", "-o", "pipefail", "-c", script};
  o.timeout = std::chrono::minutes(10);
  checkCommand(o);
}

std::string sha256Of(const fs::path& file) {
  return toHex(hashFile(file).sha256);
}

fs::path definitionFor(const TestArea& area, const std::string& name, const fs::path& base,
                       const std::string& extra = "") {
  return area.writeDefinition(name + ".yaml",
                              "name: imgpipe-test-" + name + "\nbase:\n  path: " + base.string() +
                                  "\n  sha256: " + sha256Of(base) + "\n" + extra +
                                  "disk: {compression: zstd}\n"
                                  "validation: {require_qemu_guest_agent: false}\n");
}

class DiskBases : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    area_ = std::make_unique<TestArea>("disk-bases");
    raw_ = area_->root() / "fixture.raw";
    sh("qemu-img convert -f qcow2 -O raw '" + fixtureBase().file.string() + "' '" + raw_.string() +
       "'");
  }
  static void TearDownTestSuite() { area_.reset(); }
  static std::unique_ptr<TestArea> area_;
  static fs::path raw_;
};
std::unique_ptr<TestArea> DiskBases::area_;
fs::path DiskBases::raw_;

}  // namespace

TEST_F(DiskBases, ARawXzIsUnpackedSparseOnceAndBuildsAnImageThatPassesValidation) {
  const fs::path xz = area_->root() / "fedora-like.raw.xz";
  sh("xz -T2 -0 -c '" + raw_.string() + "' > '" + xz.string() + "'");
  auto def = definitionFor(*area_, "rawxz", xz);
  auto r = runAgent(*area_, "build", def, area_->out() / "rawxz");
  ASSERT_EQ(r.exitCode, 0) << r.log;
  EXPECT_TRUE(r.manifest["validation"]["passed"].get<bool>()) << r.manifest["validation"].dump(2);
  EXPECT_EQ(r.manifest["base"]["sha256"], sha256Of(xz)) << "the digest pinned is the packed file's";
  EXPECT_NE(r.log.find("unpacked from xz"), std::string::npos) << r.log;
  // Sparse: the unpacked 3 GiB disk takes about what the fixture's data takes.
  const fs::path unpacked = area_->cache() / "bases" / ("unpacked-" + sha256Of(xz) + ".img");
  ASSERT_TRUE(fs::exists(unpacked));
  EXPECT_LT(imgpipe::build::allocatedBytes(unpacked),
            imgpipe::build::allocatedBytes(raw_) + (64u << 20));
  // The second build takes it from the cache.
  auto again = runAgent(*area_, "prepare-base", def, {});
  ASSERT_EQ(again.exitCode, 0) << again.log;
  EXPECT_EQ(again.log.find("unpacking"), std::string::npos) << again.log;
  fs::remove(unpacked);
}

TEST_F(DiskBases, AVagrantBoxOfTheVirtualboxProviderBuildsFromItsVmdk) {
  const fs::path dir = area_->root() / "box";
  fs::create_directories(dir);
  sh("qemu-img convert -f raw -O vmdk -o subformat=streamOptimized '" + raw_.string() + "' '" +
     (dir / "box-disk001.vmdk").string() + "'");
  writeFileAtomic(dir / "metadata.json", R"({"provider": "virtualbox"})");
  writeFileAtomic(dir / "Vagrantfile", "Vagrant.configure(\"2\") do |config| end\n");
  const fs::path box = area_->root() / "debian-like.box";
  sh("tar -C '" + dir.string() + "' -czf '" + box.string() +
     "' ./metadata.json ./Vagrantfile ./box-disk001.vmdk");
  fs::remove_all(dir);
  auto r = runAgent(*area_, "build", definitionFor(*area_, "box", box), area_->out() / "box");
  ASSERT_EQ(r.exitCode, 0) << r.log;
  EXPECT_TRUE(r.manifest["validation"]["passed"].get<bool>());
  EXPECT_NE(r.log.find("unpacked from vagrant-box"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("box-disk001.vmdk of a virtualbox box"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find(": vmdk,"), std::string::npos) << "the disk inside is read as VMDK";
}

TEST_F(DiskBases, VdiAndVhdxAreReadAsTheyAre) {
  for (const std::string format : {"vdi", "vhdx"}) {
    const fs::path disk = area_->root() / ("disk." + format);
    sh("qemu-img convert -f raw -O " + format + " '" + raw_.string() + "' '" + disk.string() + "'");
    auto r = runAgent(*area_, "prepare-base", definitionFor(*area_, format, disk), {});
    EXPECT_EQ(r.exitCode, 0) << r.log;
    // A definition that says another format is refused.
    auto wrong = runAgent(*area_, "prepare-base",
                          definitionFor(*area_, format + "-wrong", disk, "  format: qcow2\n"), {});
    EXPECT_NE(wrong.exitCode, 0);
    EXPECT_NE(wrong.log.find("is in format " + format + ", the definition says format: qcow2"),
              std::string::npos)
        << wrong.log;
    fs::remove(disk);
  }
}

TEST_F(DiskBases, ABaseThatWouldMakeQemuImgReadAnotherFileIsRefused) {
  // A "host secret" the size of a small disk.
  const fs::path secret = area_->root() / "host-secret.raw";
  sh("head -c 1048576 /dev/urandom > '" + secret.string() + "'");
  const fs::path vmdk = area_->root() / "descriptor.vmdk";
  writeFileAtomic(vmdk,
                  "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
                  "createType=\"monolithicFlat\"\nRW 2048 FLAT \"" +
                      secret.string() + "\" 0\nddb.virtualHWVersion = \"4\"\n");
  auto r = runAgent(*area_, "prepare-base", definitionFor(*area_, "extent", vmdk), {});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("is a VMDK whose extent is another file (" + secret.string() + ")"),
            std::string::npos)
      << r.log;

  const fs::path qcow2 = area_->root() / "data-file.qcow2";
  sh("qemu-img create -q -f qcow2 -o data_file='" + secret.string() + "' '" + qcow2.string() +
     "' 1M");
  r = runAgent(*area_, "prepare-base", definitionFor(*area_, "datafile", qcow2), {});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("has an external data file"), std::string::npos) << r.log;

  const fs::path empty = area_->root() / "empty.box";
  sh("cd '" + area_->root().string() +
     "' && echo '{\"provider\":\"libvirt\"}' > metadata.json && "
     "tar -cf '" +
     empty.string() + "' metadata.json");
  r = runAgent(*area_, "prepare-base", definitionFor(*area_, "emptybox", empty), {});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("the box holds neither box.img (libvirt) nor a .vmdk (virtualbox); its "
                       "provider is libvirt"),
            std::string::npos)
      << r.log;
  EXPECT_TRUE(leftoversUnder(area_->root()).empty());
}
