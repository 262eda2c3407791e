// Bases that start as a root tree, made in the test from Debian's mirror: a root tarball
// (tar.xz) of the fixture base's tree, as Ubuntu ships its *-root.tar.xz; an OCI image layout
// with two layers, the second deleting a file (a whiteout) and adding one, of a minbase
// debootstrap — no kernel, no systemd, no init, like Docker's debian image. Each is made into a
// bootable disk, built, validated and booted by the acceptance boot. Hostile and foreign trees are
// refused with what is wrong: a tarball writing through a symlink out of its tree, a
// docker-archive of a distribution that is not Debian's (its device node left out), a layout
// whose manifest is not the one pinned.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "tests/build/support/build_fixture.h"
#include "tests/support/test_daemons.h"

using namespace imgpipe;
using namespace imgpipe::build::test;
using nlohmann::json;

namespace {

void sh(const std::string& script) {
  SubprocessOptions o;
  o.argv = {"bash", "-o", "pipefail", "-c", script};
  o.timeout = std::chrono::minutes(15);
  checkCommand(o);
}

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

std::string sha256Of(const fs::path& file) {
  return toHex(hashFile(file).sha256);
}

// `base` is the YAML of the base mapping's one entry, indented for `base:`.
fs::path definitionFor(const TestArea& area, const std::string& name, const std::string& base,
                       const std::string& extra = "") {
  return area.writeDefinition(name + ".yaml", "name: imgpipe-test-" + name + "\nbase:\n" + base +
                                                  "disk: {compression: zstd}\n" + extra);
}

// A minbase debootstrap of bookworm, as Docker's debian image is made (debuerreotype), kept as a
// tarball in the shared cache between runs on one machine.
fs::path minbaseTarball() {
  const fs::path tarball = kSharedCache / "minbase-bookworm-tree.tar";
  if (fs::exists(tarball)) return tarball;
  const fs::path dir = kSharedCache / "minbase-bookworm-tree.partial";
  fs::remove_all(dir);
  fs::create_directories(kSharedCache / "debootstrap-tree-debs");
  sh("debootstrap --variant=minbase --cache-dir=" + q(kSharedCache / "debootstrap-tree-debs") +
     " bookworm " + q(dir) + " http://deb.debian.org/debian >/dev/null");
  sh("tar -C " + q(dir) + " --numeric-owner -cf " + q(tarball.string() + ".tmp") + " .");
  fs::rename(tarball.string() + ".tmp", tarball);
  fs::remove_all(dir);
  return tarball;
}

// An OCI layout of `tree` in one layer, then a second layer that deletes /etc/issue.net (a
// whiteout) and adds /etc/imgpipe-layer-2.
void makeTwoLayerLayout(const fs::path& layout, const fs::path& treeTar, const fs::path& scratch) {
  const fs::path bundle = scratch / "bundle";
  sh("umoci init --layout " + q(layout) + " && umoci new --image " + q(layout) + ":bookworm" +
     " && umoci unpack --image " + q(layout) + ":bookworm " + q(bundle) + " >/dev/null" +
     " && tar -C " + q(bundle / "rootfs") + " --numeric-owner -xpf " + q(treeTar) +
     " && umoci repack --refresh-bundle --image " + q(layout) + ":bookworm " + q(bundle) +
     " && test -f " + q(bundle / "rootfs/etc/issue.net") + " && rm " +
     q(bundle / "rootfs/etc/issue.net") + " && echo second > " +
     q(bundle / "rootfs/etc/imgpipe-layer-2") + " && umoci repack --image " + q(layout) +
     ":bookworm " + q(bundle));
  fs::remove_all(bundle);
}

// An OCI layout (tag 3) of a tree that is not Debian's: an os-release saying Alpine, and a block
// device node (loop0) in /root.
fs::path alpineLikeLayout(const fs::path& dir) {
  const fs::path layout = dir / "alpine-like";
  if (fs::exists(layout)) return layout;
  const fs::path bundle = dir / "alpine-bundle";
  sh("umoci init --layout " + q(layout) + " && umoci new --image " + q(layout) +
     ":3 && umoci unpack --image " + q(layout) + ":3 " + q(bundle) + " >/dev/null && mkdir -p " +
     q(bundle / "rootfs/etc") + " " + q(bundle / "rootfs/root") + " && printf 'ID=alpine\\n" +
     "PRETTY_NAME=\"Alpine Linux v3.19\"\\n' > " + q(bundle / "rootfs/etc/os-release") +
     " && mknod " + q(bundle / "rootfs/root/disk") + " b 7 0 && umoci repack --image " + q(layout) +
     ":3 " + q(bundle));
  fs::remove_all(bundle);
  return layout;
}

// skopeo with a policy that takes any image (the test's own).
std::string skopeo(const fs::path& dir) {
  const fs::path policy = dir / "policy.json";
  writeFileAtomic(policy, R"({"default":[{"type":"insecureAcceptAnything"}]})");
  return "skopeo --policy " + q(policy);
}

std::string capture(const std::string& script) {
  SubprocessOptions o;
  o.argv = {"bash", "-o", "pipefail", "-c", script};
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(2);
  auto r = runCommand(o);
  if (r.exitCode != 0) throw Error("failed: " + script);
  auto out = r.stdoutText;
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

std::map<std::string, json> checksOf(const json& boot) {
  std::map<std::string, json> out;
  for (const auto& c : boot["checks"])
    out[c["check"].get<std::string>()] = c;
  return out;
}

// The acceptance boot passed every check in every boot; prints each boot's time.
void expectBootedClean(const json& manifest, std::size_t boots, const std::string& what,
                       std::set<std::string> names = {}) {
  names.insert({"cloud-init done", "no failed units", "root filesystem grown",
                "machine-id generated", "ssh host keys generated", "guest agent ping"});
  const auto& bt = manifest["validation"]["boot_test"];
  ASSERT_TRUE(bt["passed"].get<bool>()) << bt.dump(2);
  ASSERT_EQ(bt["boots"].size(), boots) << bt.dump(2);
  for (const auto& boot : bt["boots"]) {
    auto checks = checksOf(boot);
    for (const auto& name : names) {
      ASSERT_TRUE(checks.count(name)) << what << ": no check '" << name << "': " << boot.dump(2);
      EXPECT_TRUE(checks[name]["ok"].get<bool>()) << what << ": " << checks[name].dump();
    }
    std::printf("%s: acceptance boot (%s): %.1f s\n", what.c_str(),
                boot["firmware"].get<std::string>().c_str(), boot["seconds"].get<double>());
  }
}

class TreeBases : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { area_ = std::make_unique<TestArea>("tree-bases"); }
  static void TearDownTestSuite() { area_.reset(); }
  static std::unique_ptr<TestArea> area_;
};
std::unique_ptr<TestArea> TreeBases::area_;

// The acceptance boot under `firmware`, with the guest agent it checks, and `checks` (YAML list
// items) on top of the standard ones.
std::string bootFor(const std::string& firmware, const std::string& checks = "") {
  return "packages: {install: [qemu-guest-agent]}\n"
         "services: {enable: [qemu-guest-agent]}\n"
         "validation:\n"
         "  boot_test:\n"
         "    firmware: " +
         firmware + "\n" + (checks.empty() ? "" : "    checks:\n" + checks);
}

}  // namespace

TEST_F(TreeBases, ARootTarballIsMadeIntoABootableDiskThatBuildsAndBootsClean) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path tarball = area_->root() / "debian-12-root.tar.xz";
  {
    MountedImage fixture(fixtureBase().file, area_->root() / "fixture");
    sh("tar -C " + q(fixture.root()) + " --numeric-owner --xattrs -cf - . | xz -T2 -1 > " +
       q(tarball));
  }
  const std::string base = "  rootfs:\n    path: " + tarball.string() +
                           "\n    sha256: " + sha256Of(tarball) + "\n    size: 3G\n";
  const std::string boot = bootFor("bios");
  auto r = runAgent(*area_, "build", definitionFor(*area_, "rootfs", base, boot),
                    area_->out() / "rootfs");
  ASSERT_EQ(r.exitCode, 0) << r.log;
  EXPECT_EQ(r.manifest["base"]["kind"], "rootfs") << r.manifest["base"].dump(2);
  EXPECT_TRUE(r.manifest["validation"]["passed"].get<bool>()) << r.manifest["validation"].dump(2);
  expectBootedClean(r.manifest, 1, "rootfs");
  std::printf("root tarball base, build and boot: %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  // Made once: the next use takes the made disk from the cache.
  auto again = runAgent(*area_, "prepare-base", definitionFor(*area_, "rootfs", base, boot), {});
  ASSERT_EQ(again.exitCode, 0) << again.log;
  EXPECT_EQ(again.log.find("making it"), std::string::npos) << again.log;
  fs::remove(tarball);
}

TEST_F(TreeBases, AnOciLayoutOfTwoLayersWithAWhiteoutBecomesABootableImage) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path layout = area_->root() / "debian-12-oci";
  makeTwoLayerLayout(layout, minbaseTarball(), area_->root());
  const std::string base = "  oci:\n    path: " + layout.string() + "\n    ref: bookworm\n";
  auto r = runAgent(
      *area_, "build",
      definitionFor(
          *area_, "oci", base,
          bootFor("bios", "      - {name: layer-2, run: 'test -f /etc/imgpipe-layer-2'}\n")),
      area_->out() / "oci");
  ASSERT_EQ(r.exitCode, 0) << r.log;
  EXPECT_EQ(r.manifest["base"]["kind"], "oci");
  EXPECT_NE(r.log.find("unpacking 2 layers"), std::string::npos) << r.log;
  EXPECT_TRUE(r.manifest["validation"]["passed"].get<bool>()) << r.manifest["validation"].dump(2);
  // The tree had no kernel and no init: both were installed, and it boots (UEFI: the same disk
  // code as the debootstrap base, booted under both by the boot label).
  expectBootedClean(r.manifest, 1, "oci", {"check layer-2"});
  std::printf("OCI layout base, build and boot: %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  // What the layers say, read by the test from the finished image itself.
  MountedImage image(area_->out() / "oci" / r.manifest["image"]["file"].get<std::string>(),
                     area_->root() / "oci-image");
  EXPECT_FALSE(fs::exists(image.root() / "etc/issue.net")) << "the whiteout was not applied";
  EXPECT_EQ(readFile(image.root() / "etc/imgpipe-layer-2"), "second\n");
  EXPECT_FALSE(fs::is_empty(image.root() / "boot")) << "no kernel installed";
  EXPECT_TRUE(fs::exists(fs::symlink_status(image.root() / "sbin/init"))) << "no init installed";
  EXPECT_TRUE(leftoversUnder(area_->root() / "work").empty());
}

TEST_F(TreeBases, HostileAndForeignTreesAreRefusedNamingWhatIsWrong) {
  // A tarball whose `etc` is a symlink out of the tree, and a file written through it.
  const fs::path outside = area_->root() / "outside";
  fs::create_directories(outside);
  const fs::path src = area_->root() / "hostile-src";
  fs::create_directories(src);
  fs::create_symlink(outside, src / "etc");
  const fs::path hostile = area_->root() / "hostile.tar";
  sh("cd " + q(src) + " && tar -cf " + q(hostile) + " etc && rm etc && mkdir etc && " +
     "echo 'root::0:0::/root:/bin/sh' > etc/passwd && tar -rf " + q(hostile) + " etc/passwd");
  auto r = runAgent(
      *area_, "prepare-base",
      definitionFor(*area_, "hostile", "  rootfs: {path: " + hostile.string() + "}\n"), {});
  EXPECT_NE(r.exitCode, 0) << r.log;
  EXPECT_FALSE(fs::exists(outside / "passwd")) << "a member was written outside the tree";
  EXPECT_NE(r.log.find("tar"), std::string::npos) << r.log;

  // A docker-archive of a tree that is not Debian's, with a device node in it.
  const fs::path layout = alpineLikeLayout(area_->root());
  const fs::path archive = area_->root() / "alpine-like.tar";
  sh(skopeo(area_->root()) + " copy --quiet oci:" + layout.string() +
     ":3 docker-archive:" + archive.string() + ":example/alpine:3");
  r = runAgent(*area_, "prepare-base",
               definitionFor(*area_, "alpine", "  oci: {path: " + archive.string() + "}\n"), {});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("(docker-archive)"), std::string::npos) << "format not probed: " << r.log;
  EXPECT_NE(r.log.find("left out 1 device nodes"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("is Alpine Linux v3.19; imgpipe makes only Debian"), std::string::npos)
      << r.log;

  // A layout whose manifest is not the one the definition pins.
  r = runAgent(*area_, "prepare-base",
               definitionFor(*area_, "pinned",
                             "  oci:\n    path: " + layout.string() + "\n    ref: '3'\n" +
                                 "    sha256: " + std::string(64, 'a') + "\n"),
               {});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("base checksum mismatch: oci:" + layout.string() +
                       ":3 has image manifest sha256:"),
            std::string::npos)
      << r.log;
  EXPECT_TRUE(leftoversUnder(area_->root() / "work").empty());
}

TEST_F(TreeBases, ARegistryImageIsPulledByItsDigestThroughTheMirrorAndTheBuildProxy) {
  // A real registry, reached by the host's own address (Go never proxies loopback), holding the
  // image docker.io would: library/alpine:3. docker.io itself is never reached.
  imgpipe::test::Registry registry(area_->root() / "registry");
  imgpipe::test::Tinyproxy proxy(area_->root() / "proxy");
  const std::string host = capture("hostname -I | awk '{print $1}'");
  ASSERT_FALSE(host.empty());
  const std::string mirror = host + ":" + std::to_string(registry.port());
  const fs::path layout = alpineLikeLayout(area_->root());
  sh(skopeo(area_->root()) + " copy --quiet --dest-tls-verify=false oci:" + layout.string() +
     ":3 docker://" + mirror + "/library/alpine:3");
  std::string digest = capture(skopeo(area_->root()) + " inspect --tls-verify=false docker://" +
                               mirror + "/library/alpine:3 --format '{{.Digest}}'");
  ASSERT_TRUE(digest.starts_with("sha256:")) << digest;
  digest = digest.substr(7);

  const fs::path configFile = area_->writeConfig(area_->config());
  writeFileAtomic(configFile, readFile(configFile) + "  proxy: {http: " + proxy.url() + "}\n");
  auto run = [&](const std::string& pin) {
    const auto def =
        definitionFor(*area_, "registry",
                      "  oci: {registry: 'docker.io/library/alpine:3', sha256: " + pin + "}\n",
                      "mirrors:\n  docker: {registry_mirrors: ['http://" + mirror + "']}\n");
    SubprocessOptions o;
    o.argv = {agentBinary().string(), "prepare-base", def.string(),          "--config",
              configFile.string(),    "--work-dir",   area_->work().string()};
    o.timeout = std::chrono::minutes(5);
    std::string log;
    o.onLine = [&](std::string_view l) { log += std::string(l) + "\n"; };
    return std::pair(runCommand(o).exitCode, log);
  };
  auto [code, log] = run(digest);
  // Pulled, unpacked, and refused only for what it is.
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("copying docker://docker.io/library/alpine@sha256:" + digest),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("is Alpine Linux v3.19; imgpipe makes only Debian"), std::string::npos) << log;
  EXPECT_NE(registry.log().find("/v2/library/alpine/manifests/sha256:" + digest), std::string::npos)
      << "not pulled from the mirror by digest:\n"
      << registry.log();
  EXPECT_NE(proxy.log().find(mirror), std::string::npos) << "not through build.proxy:\n"
                                                         << proxy.log();

  // A digest the registry does not have is not replaced by the tag's image.
  std::tie(code, log) = run(std::string(64, 'e'));
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("alpine@sha256:" + std::string(64, 'e')), std::string::npos) << log;
  EXPECT_EQ(log.find("is Alpine Linux"), std::string::npos) << log;
  EXPECT_TRUE(leftoversUnder(area_->root() / "work").empty());
}
