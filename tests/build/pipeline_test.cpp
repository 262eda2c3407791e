// A real build through the agent's TaskRunner: the fixture base (debootstrap from Debian's
// mirror), real apt against Debian's mirror, files, scripts, mirrors, repositories, cloud-init,
// services, the boot test under QEMU — then the test opens the output read-only by its own
// means and checks every item of the definition and every cleanup item. A second identical
// build reuses the result.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "agent-build/runner/build_task_runner.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "definition/bundle.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build;
using namespace imgpipe::build::test;
using nlohmann::json;

namespace {

std::string mainDefinition(const FixtureBase& base) {
  return R"(name: imgpipe-test-main
version: "1.0.0-test"
base:
  path: )" +
         base.file.string() + R"(
  sha256: )" +
         base.sha256 + R"(
disk:
  size: 4G
mirrors:
  apt:
    sources:
      - name: debian
        uris: [http://deb.debian.org/debian]
        suites: [bookworm, bookworm-updates]
        components: [main]
        signed_by: /usr/share/keyrings/debian-archive-keyring.gpg
    remove_legacy_sources_list: true
  docker:
    registry_mirrors: [https://docker.mirror.example]
  containerd:
    registries:
      - host: docker.io
        mirrors: [{url: "https://docker.mirror.example"}]
repositories:
  - name: debian-backports
    uris: [http://deb.debian.org/debian]
    suites: [bookworm-backports]
    components: [main]
    key_file: keys/debian-archive-keyring.gpg   # sent with the definition (its bundle)
packages:
  install: [qemu-guest-agent, tree]
files:
  - path: /etc/imgpipe-test/hello.txt
    content: "hello from imgpipe\n"
    mode: "0640"
    owner: root:adm
  - path: /usr/local/bin/imgpipe-hello
    content: "#!/bin/sh\necho hello\n"
    mode: "0755"
scripts:
  - name: record
    env: {GREETING: hi}
    run: |
      #!/bin/sh
      set -e
      echo "built $IMGPIPE_IMAGE_NAME $IMGPIPE_IMAGE_VERSION with $GREETING" > /etc/imgpipe-test/script.txt
      tree --version > /dev/null
      echo "rm -rf /" > /root/.bash_history
      touch /tmp/leftover
cloud_init:
  default_user:
    add_groups: [docker]
  datasources: [NoCloud, ConfigDrive, OpenStack, None]
  drop_ins:
    - name: 99-imgpipe-test.cfg
      content: |
        ssh_pwauth: false
services:
  enable: [qemu-guest-agent]
  disable: [e2scrub_reap]
  mask: [apt-daily.timer]
validation:
  boot_test: {firmware: bios}   # UEFI too is the boot tests' (label boot) job
  expect_packages: [tree]
glance:
  min_ram: 512
  tags: [test]
  metadata: {os_distro: debian, hw_qemu_guest_agent: 'yes'}
  properties: {hw_disk_bus: virtio}
)";
}

std::string read(const MountedImage& img, const std::string& path) {
  return readFile(img.root() / path.substr(1));
}

bool packageInstalled(const std::string& status, const std::string& name) {
  auto at = status.find("Package: " + name + "\n");
  if (at == std::string::npos) return false;
  auto end = status.find("\n\n", at);
  return status.substr(at, end - at).find("Status: install ok installed") != std::string::npos;
}

}  // namespace

TEST(BuildPipeline, BuildsEveryItemOfTheDefinitionAndReusesTheResult) {
  const auto& base = fixtureBase();
  TestArea area("pipeline");
  auto config = area.config();
  const std::string definition = mainDefinition(base);
  const std::string keyring = readFile("/usr/share/keyrings/debian-archive-keyring.gpg");

  std::vector<BuildOutput> published;
  BuildTaskRunner runner(config, [&](const BuildOutput& out, const OutputFile&) {
    published.push_back(out);
    return artifactFromOutput(out);
  });

  const std::map<std::string, std::string> bundleFiles = {
      {"keys/debian-archive-keyring.gpg", keyring}};
  auto bundle = definition::bundleOf("def.yaml", definition);
  bundle.files.insert(bundleFiles.begin(), bundleFiles.end());

  RecordingReporter reporter;
  runner.run(buildTask("job-main", definition, "def.yaml", bundleFiles), reporter, {});
  ASSERT_FALSE(reporter.failure())
      << reporter.failure()->step << ": " << reporter.failure()->message;
  ASSERT_TRUE(reporter.result());
  ASSERT_EQ(published.size(), 1u);
  const auto out = published[0];
  const auto artifact = *reporter.result()->artifact;

  // Every step reported its end with a duration, in order; progress came during long steps.
  EXPECT_EQ(reporter.stepsLogged(),
            "fetch_base,fetch_inputs,reuse,resize,attach,grow,mount,mirrors,repositories,packages,"
            "files,scripts,"
            "cloud_init,services,cleanup,unmount,compact,validate,boot_test,manifest");
  auto progress = reporter.progressEvents();
  EXPECT_TRUE(std::any_of(progress.begin(), progress.end(),
                          [](const auto& p) { return p.step == "packages"; }));
  EXPECT_TRUE(std::any_of(progress.begin(), progress.end(),
                          [](const auto& p) { return p.step == "compact"; }));

  // The artifact is the file on disk, and its manifest says so.
  auto digests = hashFile(out.image);
  EXPECT_EQ(artifact.id, toHex(digests.sha256));
  EXPECT_EQ(artifact.sha512, toHex(digests.sha512));
  EXPECT_EQ(artifact.size, digests.size);
  EXPECT_EQ(artifact.virtualSize, 4ull << 30);
  EXPECT_EQ(artifact.imageName, "imgpipe-test-main");
  EXPECT_EQ(artifact.imageVersion, "1.0.0-test");
  EXPECT_EQ(artifact.manifestDigest, toHex(sha256(out.manifestJson)));
  EXPECT_EQ(out.image, config.outputDir / "imgpipe-test-main" / "1.0.0-test" /
                           "imgpipe-test-main-1.0.0-test.qcow2");
  auto m = json::parse(out.manifestJson);
  EXPECT_EQ(m["image"]["sha256"], artifact.id);
  EXPECT_EQ(m["image"]["sha512"], artifact.sha512);
  EXPECT_EQ(m["image"]["compression"], "zlib");
  EXPECT_EQ(m["definition"]["digest"], bundle.digest());
  EXPECT_EQ(m["base"]["sha256"], base.sha256);
  EXPECT_EQ(m["build_log"]["sha256"], toHex(sha256(readFile(out.buildLog))));
  EXPECT_TRUE(m["validation"]["passed"]);
  EXPECT_TRUE(m["validation"]["boot_test"]["passed"]) << m["validation"]["boot_test"].dump(2);
  ASSERT_EQ(m["validation"]["boot_test"]["boots"].size(), 1u);
  EXPECT_EQ(m["validation"]["boot_test"]["boots"][0]["firmware"], "bios");
  EXPECT_EQ(m["glance"]["min_disk"], 4);
  EXPECT_EQ(m["glance"]["display_name"], "imgpipe-test-main 1.0.0-test");
  EXPECT_EQ(m["glance"]["properties"]["hw_qemu_guest_agent"], "yes");
  bool treeListed = false;
  for (const auto& p : m["packages"])
    treeListed |= p["name"] == "tree";
  EXPECT_TRUE(treeListed);
  EXPECT_EQ(readFile(out.manifestFile), out.manifestJson);
  auto info = json::parse(checkCommand({"qemu-img", "info", "--output=json", out.image.string()}));
  EXPECT_EQ(info["format"], "qcow2");
  EXPECT_FALSE(info.contains("backing-filename"));

  {
    MountedImage img(out.image, area.root() / "inspect");
    // Mirrors, repositories.
    EXPECT_EQ(read(img, "/etc/apt/sources.list.d/debian.sources"),
              "# written by imgpipe\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: "
              "bookworm bookworm-updates\n"
              "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n");
    EXPECT_FALSE(fs::exists(img.root() / "etc/apt/sources.list"));
    EXPECT_EQ(read(img, "/etc/apt/keyrings/debian-backports.gpg"), keyring);
    EXPECT_NE(read(img, "/etc/apt/sources.list.d/debian-backports.sources")
                  .find("Signed-By: /etc/apt/keyrings/debian-backports.gpg"),
              std::string::npos);
    EXPECT_EQ(json::parse(read(img, "/etc/docker/daemon.json"))["registry-mirrors"],
              json::array({"https://docker.mirror.example"}));
    EXPECT_NE(read(img, "/etc/containerd/certs.d/docker.io/hosts.toml")
                  .find("[host.\"https://docker.mirror.example\"]"),
              std::string::npos);
    // Packages from the mirror.
    auto status = read(img, "/var/lib/dpkg/status");
    EXPECT_TRUE(packageInstalled(status, "tree"));
    EXPECT_TRUE(packageInstalled(status, "qemu-guest-agent"));
    EXPECT_TRUE(packageInstalled(status, "cloud-init"));
    // Files with mode and owner (adm resolved in the image's /etc/group).
    EXPECT_EQ(read(img, "/etc/imgpipe-test/hello.txt"), "hello from imgpipe\n");
    struct stat st {};
    ASSERT_EQ(::stat((img.root() / "etc/imgpipe-test/hello.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, 4u);  // adm on Debian
    ASSERT_EQ(::stat((img.root() / "usr/local/bin/imgpipe-hello").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    // The script ran in the image (its sandbox), in order after the packages, with its environment.
    EXPECT_EQ(read(img, "/etc/imgpipe-test/script.txt"),
              "built imgpipe-test-main 1.0.0-test with hi\n");
    EXPECT_FALSE(fs::exists(img.root() / "run/imgpipe"));
    // cloud-init: the default user's groups are Debian's plus docker; no usermod happened.
    auto user = read(img, "/etc/cloud/cloud.cfg.d/90-imgpipe-default-user.cfg");
    EXPECT_NE(user.find("docker"), std::string::npos) << user;
    EXPECT_NE(user.find("sudo"), std::string::npos) << user;
    EXPECT_EQ(read(img, "/etc/group").find("docker:"), std::string::npos);
    EXPECT_NE(read(img, "/etc/cloud/cloud.cfg.d/90-imgpipe-datasources.cfg").find("ConfigDrive"),
              std::string::npos);
    EXPECT_EQ(read(img, "/etc/cloud/cloud.cfg.d/99-imgpipe-test.cfg"), "ssh_pwauth: false\n");
    // Services.
    EXPECT_EQ(fs::read_symlink(img.root() / "etc/systemd/system/apt-daily.timer"), "/dev/null");
    for (const auto& e : fs::recursive_directory_iterator(img.root() / "etc/systemd/system"))
      EXPECT_NE(e.path().filename(), "e2scrub_reap.service") << e.path();
    EXPECT_TRUE(
        fs::is_symlink(img.root() / "etc/systemd/system/multi-user.target.wants/ssh.service"));

    // Cleanup items.
    EXPECT_EQ(fs::file_size(img.root() / "etc/machine-id"), 0u);
    EXPECT_FALSE(fs::exists(img.root() / "var/lib/dbus/machine-id"));
    for (const auto& e : fs::directory_iterator(img.root() / "etc/ssh"))
      EXPECT_FALSE(e.path().filename().string().starts_with("ssh_host_")) << e.path();
    EXPECT_FALSE(fs::exists(img.root() / "root/.bash_history"));
    for (const auto& e : fs::directory_iterator(img.root() / "var/lib/apt/lists"))
      EXPECT_TRUE(e.path().filename() == "lock" || e.path().filename() == "partial") << e.path();
    for (const auto& e : fs::directory_iterator(img.root() / "var/cache/apt/archives"))
      EXPECT_NE(e.path().extension(), ".deb") << e.path();
    EXPECT_TRUE(!fs::exists(img.root() / "var/lib/cloud") ||
                fs::is_empty(img.root() / "var/lib/cloud"));
    EXPECT_TRUE(fs::is_empty(img.root() / "tmp"));
    for (const auto& e : fs::recursive_directory_iterator(img.root() / "var/log"))
      if (e.is_regular_file() && !e.is_symlink()) {
        EXPECT_EQ(e.file_size(), 0u) << e.path();
      }
    EXPECT_EQ(fs::read_symlink(img.root() / "etc/resolv.conf"),
              "../run/systemd/resolve/stub-resolv.conf");
    EXPECT_FALSE(fs::exists(img.root() / "usr/sbin/policy-rc.d"));
    std::istringstream shadow(read(img, "/etc/shadow"));
    for (std::string line; std::getline(shadow, line);) {
      auto pw = line.substr(line.find(':') + 1);
      pw = pw.substr(0, pw.find(':'));
      EXPECT_TRUE(pw == "*" || pw == "!" || pw == "!*") << line;
    }
    // The root partition fills the grown disk (GPT keeps its backup in the last 33 sectors).
    EXPECT_EQ(img.diskSize(), 4ull << 30);
    EXPECT_LE(img.diskSize() - (img.rootStart() + img.rootSize()), (1ull << 20) + 33 * 512);
  }
  // Opening it changed nothing.
  EXPECT_EQ(toHex(hashFile(out.image).sha256), artifact.id);
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
  EXPECT_TRUE(fs::is_empty(config.workDir)) << "work dir not cleaned";

  // Same definition, same base: the result is reused, not rebuilt.
  RecordingReporter again;
  const auto start = std::chrono::steady_clock::now();
  runner.run(buildTask("job-main-2", definition, "def.yaml", bundleFiles), again, {});
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(again.failure()) << again.failure()->message;
  ASSERT_EQ(published.size(), 2u);
  EXPECT_TRUE(published[1].reused);
  EXPECT_EQ(again.result()->artifact->id, artifact.id);
  EXPECT_LT(secs, 20.0);
  EXPECT_NE(again.result()->detail.find("reused"), std::string::npos);
  EXPECT_EQ(json::parse(published[1].manifestJson)["build"]["reused_from"]["job_id"], "job-main");

  // A job of the next version with identical bytes reuses them, under its own version: the one
  // the job was given, in the result, the manifest and the Glance spec (issue 10).
  std::string next = definition;
  const std::string oldVersion = "version: \"1.0.0-test\"";
  next.replace(next.find(oldVersion), oldVersion.size(), "version: \"1.0.1-test\"");
  RecordingReporter third;
  auto task = buildTask("job-main-3", next, "def.yaml", bundleFiles);
  std::get<agent::BuildSpec>(task.kind).imageVersion = "1.0.1-test";
  runner.run(task, third, {});
  ASSERT_FALSE(third.failure()) << third.failure()->message;
  ASSERT_EQ(published.size(), 3u);
  EXPECT_TRUE(published[2].reused);
  EXPECT_EQ(third.result()->artifact->id, artifact.id);
  EXPECT_EQ(third.result()->artifact->imageVersion, "1.0.1-test");
  auto m3 = json::parse(published[2].manifestJson);
  EXPECT_EQ(m3["image"]["version"], "1.0.1-test");
  EXPECT_EQ(m3["glance"]["display_name"], "imgpipe-test-main 1.0.1-test");
  EXPECT_EQ(published[2].image, config.outputDir / "imgpipe-test-main" / "1.0.1-test" /
                                    "imgpipe-test-main-1.0.1-test.qcow2");
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
}
