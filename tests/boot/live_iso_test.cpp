// outputs: [iso], for real: a definition built once on the fixture base with outputs: [qcow2,
// iso] and boot_test.outputs: [iso]; its acceptance boot must have booted the live ISO (and not
// the qcow2) under BIOS and UEFI from a CD-ROM with no disk, and the customization (a package, a
// file, a service, a definition's checks) must show inside that guest. The ISO published beside the
// qcow2 must be the one the manifest describes and the one that was booted, its squashfs must hold
// the image's root with the live fstab, and it must be a hybrid (El Torito BIOS + EFI) image.
#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build::test;
using nlohmann::json;

namespace {

const fs::path kDefinition = sourceDir() / "tests/boot/live-iso.yaml";

struct Built {
  fs::path image, iso;
  json manifest;
  std::string log;
  int exitCode = -1;
};

TestArea& area() {
  static TestArea a("live-iso");
  return a;
}

const Built& liveImage() {
  static std::once_flag once;
  static Built built;
  std::call_once(once, [] {
    fixtureBase();
    auto r =
        runAgent(area(), "build", kDefinition, area().out(), std::chrono::minutes(40), "live-iso");
    built.exitCode = r.exitCode;
    built.log = r.log;
    if (r.exitCode != 0) return;
    built.manifest = r.manifest;
    built.image = area().out() / built.manifest["image"]["file"].get<std::string>();
    for (const auto& out : built.manifest["outputs"])
      if (out["kind"] == "iso") built.iso = area().out() / out["file"].get<std::string>();
  });
  return built;
}

std::string run(std::vector<std::string> argv) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(5);
  auto r = runCommand(o);
  EXPECT_EQ(r.exitCode, 0) << o.argv[0] << ": " << r.stdoutText;
  return r.stdoutText;
}

}  // namespace

TEST(LiveIso, TheIsoBootsUnderBiosAndUefiAndShowsTheCustomization) {
  const auto& built = liveImage();
  ASSERT_EQ(built.exitCode, 0) << "the build failed:\n" << built.log;
  ASSERT_FALSE(built.iso.empty()) << built.manifest["outputs"].dump(2);
  const auto& bt = built.manifest["validation"]["boot_test"];
  ASSERT_TRUE(bt["passed"]) << bt.dump(2);
  std::set<std::string> isoFirmwares, diskFirmwares;
  for (const auto& boot : bt["boots"]) {
    (boot["medium"] == "iso" ? isoFirmwares : diskFirmwares).insert(boot["firmware"]);
    if (boot["medium"] != "iso") continue;
    std::map<std::string, json> checks;
    for (const auto& c : boot["checks"])
      checks[c["check"]] = c;
    for (const char* name :
         {"cloud-init done", "no failed units", "machine-id generated", "ssh host keys generated",
          "service qemu-guest-agent active", "service ssh active", "hostname from metadata",
          "check marker", "check jq", "guest agent ping"}) {
      ASSERT_TRUE(checks.count(name)) << boot["firmware"] << ": no check '" << name << "'";
      EXPECT_TRUE(checks[name]["ok"]) << boot["firmware"] << ": " << checks[name].dump();
    }
    EXPECT_FALSE(checks.count("root filesystem grown"));  // skipped, with its reason
    bool skippedGrowth = false;
    for (const auto& s : boot["skipped"])
      skippedGrowth |= s["check"] == "root filesystem grown";
    EXPECT_TRUE(skippedGrowth) << boot.dump(2);
    std::printf("live ISO boot (%s, %s): %.1f s\n", boot["firmware"].get<std::string>().c_str(),
                boot["accel"].get<std::string>().c_str(), boot["seconds"].get<double>());
  }
  EXPECT_EQ(isoFirmwares, (std::set<std::string>{"bios", "uefi"}));
  EXPECT_TRUE(diskFirmwares.empty());  // boot_test.outputs: [iso]
  EXPECT_NE(built.log.find("the qcow2 is not booted (validation.boot_test.outputs: iso)"),
            std::string::npos);
}

TEST(LiveIso, ThePublishedIsoIsTheOneTheManifestDescribes) {
  const auto& built = liveImage();
  ASSERT_EQ(built.exitCode, 0) << "the build failed:\n" << built.log;
  ASSERT_FALSE(built.iso.empty());
  json iso;
  for (const auto& out : built.manifest["outputs"])
    if (out["kind"] == "iso") iso = out;
  EXPECT_EQ(iso["disk_format"], "iso");
  const auto d = hashFile(built.iso);
  EXPECT_EQ(d.size, iso["size"].get<std::uint64_t>());
  EXPECT_EQ(toHex(d.sha256), iso["sha256"]);
  EXPECT_EQ(toHex(d.sha512), iso["sha512"]);
  // Booting wrote nothing into it, nor into the qcow2.
  EXPECT_EQ(toHex(hashFile(built.image).sha256), built.manifest["image"]["sha256"]);
  std::set<std::string> steps;
  for (const auto& s : built.manifest["steps"])
    if (s["status"] == "ok") steps.insert(s["step"]);
  EXPECT_TRUE(steps.count("live_boot") && steps.count("live_iso"));

  // Hybrid: El Torito boot records for BIOS and for EFI.
  const std::string report =
      run({"xorriso", "-indev", built.iso.string(), "-report_el_torito", "plain"});
  EXPECT_NE(report.find("BIOS"), std::string::npos) << report;
  EXPECT_NE(report.find("UEFI"), std::string::npos) << report;

  // The squashfs holds the image's root: the customization, and the live fstab in place of
  // the disk's.
  TempDir dir(area().root(), "iso-");
  run({"xorriso", "-osirrox", "on", "-indev", built.iso.string(), "-extract",
       "/live/filesystem.squashfs", (dir.path() / "root.squashfs").string()});
  const auto sq = (dir.path() / "root.squashfs").string();
  EXPECT_EQ(run({"unsquashfs", "-cat", sq, "etc/imgpipe-live-marker"}), "customized by imgpipe\n");
  // The live fstab's layer keeps the image's / and /etc as they are (mode and owner).
  const std::string listing = run({"unsquashfs", "-ll", sq, "etc/fstab"});
  EXPECT_NE(listing.find("drwxr-xr-x root/root"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("drwx------"), std::string::npos) << listing;
  const std::string fstab = run({"unsquashfs", "-cat", sq, "etc/fstab"});
  EXPECT_EQ(fstab.find("cloudimg-rootfs"), std::string::npos) << fstab;
  EXPECT_NE(run({"unsquashfs", "-l", sq, "usr/bin/jq"}).find("usr/bin/jq"), std::string::npos);
}
