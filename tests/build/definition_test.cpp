// The image definition schema: good definitions parse into the right values, broken ones are
// refused with the file, line, field and what is wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "agent-build/steps/step.h"
#include "common/file_util.h"
#include "definition/bundle.h"
#include "definition/definition_json.h"
#include "definition/parse_definition.h"
#include "definition/resolved_glance.h"
#include "tests/build/support/definition_error.h"

using namespace imgpipe;
using namespace imgpipe::build;

namespace {

const char* kMinimal = R"(name: tiny
base:
  path: /srv/base.qcow2
)";

using build::test::definitionError;

std::filesystem::path sourceDir() {
  const char* d = std::getenv("IMGPIPE_SOURCE_DIR");
  return d ? d : IMGPIPE_TEST_SOURCE_DIR;
}

}  // namespace

TEST(Definition, MinimalDefinitionGetsDefaults) {
  auto def = definition::parseDefinition(kMinimal, "tiny.yaml");
  EXPECT_EQ(def.name, "tiny");
  EXPECT_EQ(def.version, "");
  ASSERT_TRUE(std::holds_alternative<definition::PathBase>(def.base));
  EXPECT_EQ(std::get<definition::PathBase>(def.base).path, "/srv/base.qcow2");
  EXPECT_FALSE(def.disk.size);
  EXPECT_TRUE(def.packages.update);
  EXPECT_FALSE(def.packages.upgrade);
  EXPECT_TRUE(def.cleanup.recreateJournal);
  EXPECT_FALSE(def.validation.bootTest.enabled);
  EXPECT_TRUE(def.validation.requireCloudInit);
  EXPECT_EQ(def.glance.visibility, definition::Visibility::private_);
  EXPECT_FALSE(def.glance.olderVersions.has_value());
  EXPECT_EQ(def.glance.displayNameFor(def.name, "1.0"), "tiny 1.0");
}

TEST(Definition, FullDefinitionParsesEverySection) {
  const char* yaml = R"(name: ubuntu-2404-docker
version: "2026.11.22-1"
base:
  url: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
  sha256: "SHA256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
disk: {size: 10G, compression: zstd, root_label: cloudimg-rootfs}
mirrors:
  apt:
    sources:
      - name: ubuntu
        uris: [https://archive.example/ubuntu]
        suites: [noble, noble-updates]
        components: [main, universe]
        signed_by: /usr/share/keyrings/ubuntu-archive-keyring.gpg
    proxy: http://proxy.example:3128
  docker: {registry_mirrors: [https://docker.example]}
  containerd:
    registries:
      - host: docker.io
        mirrors: [{url: https://docker.example, skip_verify: true}]
repositories:
  - name: docker
    uris: [https://download.docker.com/linux/ubuntu]
    suites: [noble]
    components: [stable]
    architectures: [amd64]
    key_url: https://download.docker.com/linux/ubuntu/gpg
packages:
  install: [docker-ce, "containerd.io=1.7.*"]
  remove: [snapd]
  upgrade: true
files:
  - {path: /etc/motd, content: "hi\n", mode: "0600", owner: "root:adm"}
  - {path: /usr/local/bin/x, source: files/x.sh, mode: 755}
scripts:
  - {name: pull, run: "echo hi", timeout: 5m, env: {A: b}}
  - run: "true"
cloud_init:
  default_user: {add_groups: [docker]}
  datasources: [ConfigDrive, OpenStack, None]
  drop_ins:
    - name: 99-x.cfg
      content: "ssh_pwauth: false\n"
services: {enable: [docker], disable: [ufw], mask: [apt-daily.timer]}
cleanup: {remove: ["/root/.cache"], recreate_journal: false}
validation:
  boot_test: {timeout: 10m, memory: 2G}
  expect_packages: [docker-ce]
  expect_services: [docker]
  require_qemu_guest_agent: false
glance:
  display_name: "Ubuntu 24.04 Docker"
  visibility: public
  min_disk: 10
  min_ram: 2048
  tags: [docker]
  protected: true
  older_versions: rename
  metadata:
    os_admin_user: ubuntu
    os_version: 24
    hw_qemu_guest_agent: yes
    hw_disk_bus: scsi
  properties:
    hw_disk_bus: virtio
)";
  auto def = definition::parseDefinition(yaml, "u.yaml");
  EXPECT_EQ(def.version, "2026.11.22-1");
  const auto& url = std::get<definition::UrlBase>(def.base);
  EXPECT_EQ(url.sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(*def.disk.size, 10ull << 30);
  EXPECT_EQ(*def.disk.compression, definition::Compression::zstd);
  ASSERT_TRUE(def.mirrors.apt);
  EXPECT_EQ(def.mirrors.apt->sources[0].suites,
            (std::vector<std::string>{"noble", "noble-updates"}));
  EXPECT_TRUE(def.mirrors.apt->removeLegacySourcesList);
  EXPECT_EQ(def.mirrors.apt->proxy, "http://proxy.example:3128");
  EXPECT_EQ(def.mirrors.containerd->registries[0].mirrors[0].capabilities,
            (std::vector<std::string>{"pull", "resolve"}));
  EXPECT_TRUE(def.mirrors.containerd->registries[0].mirrors[0].skipVerify);
  EXPECT_EQ(def.repositories[0].key.kind, definition::ContentSource::Kind::url);
  EXPECT_EQ(def.packages.install[1], "containerd.io=1.7.*");
  EXPECT_EQ(def.files[0].mode, 0600u);
  EXPECT_EQ(def.files[0].group, "adm");
  EXPECT_EQ(def.files[1].mode, 0755u);
  EXPECT_EQ(def.files[1].content.kind, definition::ContentSource::Kind::file);
  EXPECT_EQ(def.scripts[0].timeout, std::chrono::minutes(5));
  EXPECT_EQ(def.scripts[1].name, "script-2");
  EXPECT_EQ(def.cloudInit.addGroups, (std::vector<std::string>{"docker"}));
  EXPECT_EQ(def.services.mask[0], "apt-daily.timer");
  EXPECT_FALSE(def.cleanup.recreateJournal);
  EXPECT_TRUE(def.validation.bootTest.enabled);
  EXPECT_EQ(def.validation.bootTest.memory, 2ull << 30);
  EXPECT_FALSE(def.validation.requireQemuGuestAgent);
  EXPECT_EQ(def.glance.visibility, definition::Visibility::public_);
  EXPECT_EQ(*def.glance.minRamMiB, 2048u);
  EXPECT_TRUE(def.glance.protected_);
  EXPECT_EQ(def.glance.olderVersions, definition::OlderVersions::rename);
  // Metadata values are strings exactly as written ('yes' stays "yes", 24 stays "24"), and
  // properties override metadata on the same key.
  auto props = def.glance.allProperties();
  EXPECT_EQ(props.at("hw_qemu_guest_agent"), "yes");
  EXPECT_EQ(props.at("os_version"), "24");
  EXPECT_EQ(props.at("hw_disk_bus"), "virtio");
  EXPECT_EQ(def.glance.displayNameFor(def.name, def.version), "Ubuntu 24.04 Docker");
}

TEST(Definition, ErrorsNameFileLineFieldAndProblem) {
  EXPECT_EQ(definitionError("name: Bad_Name\nbase: {path: /x}\n"),
            "def.yaml:1:7: name: 'Bad_Name' is not a valid image name (lowercase letters, digits, "
            "'.', '_', '-'; at most 128)");
  EXPECT_EQ(definitionError("name: x\n"), "def.yaml:1:1: missing required field 'base'");
  EXPECT_EQ(definitionError("name: x\nbase:\n  url: https://e/x.img\n"),
            "def.yaml:3:3: base: missing required field 'sha256' (a downloaded base must be "
            "verified; the "
            "distribution publishes it in SHA256SUMS next to the image)");
  EXPECT_EQ(
      definitionError("name: x\nbase:\n  path: /a\n  url: https://e/x\n"),
      "def.yaml:3:3: base: has both 'url' and 'path'; use exactly one of: url, path, debootstrap, "
      "rootfs, oci");
  EXPECT_EQ(definitionError("name: x\nbase: {url: 'https://e/x', sha256: abc}\n"),
            "def.yaml:2:36: base.sha256: expected a SHA-256 as 64 hex digits, got 'abc'");
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\npackages:\n  install: [curl, --force-yes]\n"),
      "def.yaml:4:19: packages.install[1]: '--force-yes' is not a valid package name");
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\nfiles:\n  - path: etc/motd\n    content: hi\n"),
      "def.yaml:4:11: files[0].path: must be an absolute path, got 'etc/motd'");
  EXPECT_EQ(definitionError(
                "name: x\nbase: {path: /a}\nfiles:\n  - path: /etc/motd\n    content: hi\n    "
                "mode: rwx\n"),
            "def.yaml:6:11: files[0].mode: expected an octal mode such as \"0644\", got 'rwx'");
  EXPECT_EQ(
      definitionError(
          "name: x\nbase: {path: /a}\nfiles:\n  - {path: /proc/sys/vm/swappiness, content: '1'}\n"),
      "def.yaml:4:12: files[0].path: '/proc/sys/vm/swappiness' is under /proc, which is not part "
      "of the image");
  EXPECT_EQ(definitionError("name: x\nbase: {path: /a}\nfiles:\n  - path: /etc/motd\n"),
            "def.yaml:4:5: files[0]: needs one of: content, source, url");
  EXPECT_EQ(definitionError("name: x\nbase: {path: /a}\nglance:\n  visibility: everyone\n"),
            "def.yaml:4:15: glance.visibility: must be private, shared, community or public, got "
            "'everyone'");
  EXPECT_EQ(definitionError("name: x\nbase: {path: /a}\nglance:\n  older_versions: delete\n"),
            "def.yaml:4:19: glance.older_versions: must be keep, hide or rename, got 'delete'");
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\ndisk: {size: 10G}\nglance: {min_disk: 5}\n"),
      "def.yaml:4:20: glance.min_disk: 5 GiB is smaller than disk.size (10.0 GiB); instances "
      "on such flavors could not boot");
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\nglance:\n  metadata:\n    min_ram: '512'\n"),
      "def.yaml:5:14: glance.metadata.min_ram: 'min_ram' is reserved by Glance; use "
      "glance.min_ram");
  EXPECT_EQ(definitionError("name: x\nbase: {path: /a}\nglance:\n  metadata:\n    tags: [a, b]\n"),
            "def.yaml:5:11: glance.metadata.tags: 'tags' is reserved by Glance; use glance.tags");
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\nglance:\n  properties:\n    team: [a, b]\n"),
      "def.yaml:5:11: glance.properties.team: must be a single value (it becomes a string "
      "property)");
  EXPECT_EQ(
      definitionError(
          "name: x\nbase: {path: /a}\ncloud_init:\n  default_user: {groups: [a], add_groups: "
          "[b]}\n"),
      "def.yaml:4:17: cloud_init.default_user: has both 'groups' (replaces the image's list) and "
      "'add_groups' (adds to it); use one");
  EXPECT_EQ(definitionError(
                "name: x\nbase: {path: /a}\npackages: {install: [curl], remove: [vim, curl]}\n"),
            "def.yaml:3:43: packages.remove[1]: 'curl' is both installed and removed");
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\nservices: {enable: [ssh], disable: [ssh]}\n"),
      "def.yaml:3:36: services.disable: 'ssh' is both enabled and disabled");
}

TEST(Definition, UnknownKeysAreErrorsAtEveryLevel) {
  auto top = definitionError("name: x\nbase: {path: /a}\npakages: {install: [curl]}\n");
  EXPECT_EQ(top.substr(0, top.find(" (known keys")), "def.yaml:3:1: unknown key 'pakages'");
  EXPECT_NE(top.find("packages"), std::string::npos) << top;
  auto nested = definitionError("name: x\nbase: {path: /a}\npackages:\n  instal: [curl]\n");
  EXPECT_EQ(nested.substr(0, nested.find(" (known keys")),
            "def.yaml:4:3: packages: unknown key 'instal'");
  auto deep = definitionError(
      "name: x\nbase: {path: /a}\nmirrors:\n  containerd:\n    registries:\n      - host: "
      "docker.io\n"
      "        mirrors: [{url: 'https://m', skipverify: true}]\n");
  EXPECT_EQ(deep.substr(0, deep.find(" (known keys")),
            "def.yaml:7:38: mirrors.containerd.registries[0].mirrors[0]: unknown key 'skipverify'");
  auto glance = definitionError("name: x\nbase: {path: /a}\nglance:\n  min_disks: 3\n");
  EXPECT_EQ(glance.substr(0, glance.find(" (known keys")),
            "def.yaml:4:3: glance: unknown key 'min_disks'");
}

TEST(Definition, CloudInitDropInMustBeValidYaml) {
  auto msg = definitionError(
      "name: x\nbase: {path: /a}\ncloud_init:\n  drop_ins:\n    - name: 99-x.cfg\n"
      "      content: |\n        system_info: [unclosed\n");
  EXPECT_EQ(
      msg.substr(0, msg.find(": end of")),
      "def.yaml:6:16: cloud_init.drop_ins[0].content: is not valid YAML (line 2 of the content)")
      << msg;
  EXPECT_EQ(
      definitionError("name: x\nbase: {path: /a}\ncloud_init:\n  drop_ins:\n    - {name: x.conf, "
                      "content: 'a: 1'}\n"),
      "def.yaml:5:14: cloud_init.drop_ins[0].name: must be a file name ending in .cfg "
      "(cloud-init reads only *.cfg), got 'x.conf'");
}

TEST(Definition, SyntaxErrorsHavePositions) {
  auto msg = definitionError("name: x\nbase: {path: /a\n");
  EXPECT_EQ(msg.rfind("def.yaml:", 0), 0u) << msg;
  EXPECT_NE(msg.find("not valid YAML"), std::string::npos) << msg;
}

TEST(Definition, DerivedVersionIsUtcDateTime) {
  auto t = std::chrono::system_clock::from_time_t(1795311296);  // 2026-11-22T01:34:56Z
  EXPECT_EQ(definition::deriveVersion(t), "2026.11.22-013456");
}

TEST(Definition, PlannedStepsFollowTheIssueOrderAndSkipWhatIsNotAsked) {
  auto minimal = plannedSteps(definition::parseDefinition(kMinimal, "t.yaml"));
  EXPECT_EQ(minimal, (std::vector<std::string>{"fetch_base", "fetch_inputs", "reuse", "resize",
                                               "attach", "grow", "mount", "cleanup", "unmount",
                                               "compact", "validate", "manifest"}));
  auto def = definition::parseDefinition(R"(name: x
base: {path: /a}
mirrors: {docker: {registry_mirrors: ["https://m"]}}
repositories: [{name: r, uris: ["https://r"], suites: [s], components: [c], key: k}]
packages: {install: [curl]}
files: [{path: /a, content: b}]
scripts: [{run: "true"}]
cloud_init: {datasources: [None]}
services: {enable: [ssh]}
validation: {boot_test: true}
)",
                                         "t.yaml");
  EXPECT_EQ(plannedSteps(def),
            (std::vector<std::string>{"fetch_base",   "fetch_inputs", "reuse",     "resize",
                                      "attach",       "grow",         "mount",     "mirrors",
                                      "repositories", "packages",     "files",     "scripts",
                                      "cloud_init",   "services",     "cleanup",   "unmount",
                                      "compact",      "validate",     "boot_test", "manifest"}));
}

TEST(Definition, ResolvedGlanceDefaultsFromTheImage) {
  auto def = definition::parseDefinition(kMinimal, "t.yaml");
  auto g =
      definition::toJson(definition::resolveGlance(def.glance, def.name, "1.2", (10ull << 30) + 1));
  EXPECT_EQ(g["display_name"], "tiny 1.2");
  EXPECT_EQ(g["min_disk"], 11);  // rounded up
  EXPECT_EQ(g["visibility"], "private");
}

TEST(Definition, DeployExamplesAreValid) {
  int seen = 0;
  for (const auto& e : std::filesystem::directory_iterator(sourceDir() / "deploy" / "examples")) {
    if (e.path().extension() != ".yaml") continue;
    ++seen;
    // What `imgpipe submit` sends: the definition and every file it refers to, from beside it.
    try {
      auto bundle = definition::loadBundle(e.path());
      EXPECT_EQ(bundle.rootPath, e.path().filename().string());
    } catch (const std::exception& ex) {
      ADD_FAILURE() << e.path() << ": " << ex.what();
    }
  }
  EXPECT_GE(seen, 3);
}

TEST(Definition, AcceptanceBootFields) {
  auto def = definition::parseDefinition(std::string(kMinimal) + R"(validation:
  boot_test:
    method: nspawn
    firmware: both
    timeout: 2m
    disk_size: 20G
    resolve: mirror.example
    checks:
      - name: docker-runs
        run: docker info
        exit_code: 0
        output: '^[0-9]+\.'
      - name: no-motd
        run: test -e /etc/motd
        exit_code: 1
        timeout: 5s
        nspawn: false
)",
                                         "def.yaml");
  const auto& bt = def.validation.bootTest;
  EXPECT_TRUE(bt.enabled);
  EXPECT_EQ(bt.method, definition::BootMethod::nspawn);
  EXPECT_EQ(bt.firmware, definition::BootFirmware::both);
  EXPECT_EQ(bt.timeout, std::chrono::minutes(2));
  EXPECT_EQ(bt.diskSize, 20ull << 30);
  EXPECT_EQ(bt.resolve, "mirror.example");
  ASSERT_EQ(bt.checks.size(), 2u);
  EXPECT_EQ(bt.checks[0].output, "^[0-9]+\\.");
  EXPECT_EQ(bt.checks[1].exitCode, 1);
  EXPECT_EQ(bt.checks[1].timeout, std::chrono::seconds(5));
  EXPECT_TRUE(bt.checks[0].nspawn);
  EXPECT_FALSE(bt.checks[1].nspawn);
  // Defaults: qemu, BIOS plus UEFI where the image has an ESP.
  auto plain = definition::parseDefinition(
      std::string(kMinimal) + "validation: {boot_test: true}\n", "def.yaml");
  EXPECT_EQ(plain.validation.bootTest.method, definition::BootMethod::qemu);
  EXPECT_EQ(plain.validation.bootTest.firmware, definition::BootFirmware::auto_);
  EXPECT_FALSE(plain.validation.bootTest.diskSize);

  auto err = [&](const std::string& section) {
    return definitionError(std::string(kMinimal) + "validation:\n  boot_test:\n" + section);
  };
  EXPECT_NE(err("    firmware: efi\n").find("must be auto, bios, uefi or both, got 'efi'"),
            std::string::npos);
  EXPECT_NE(err("    method: vm\n").find("must be qemu or nspawn"), std::string::npos);
  EXPECT_NE(err("    expect: 'login:'\n").find("no longer used"), std::string::npos);
  EXPECT_NE(err("    checks: [{name: a, run: x}, {name: a, run: y}]\n").find("duplicate check 'a'"),
            std::string::npos);
  EXPECT_NE(err("    checks: [{name: 'a b', run: x}]\n").find("must be a simple name"),
            std::string::npos);
  EXPECT_NE(err("    checks: [{name: a, run: x, output: '(['}]\n").find("not a regular expression"),
            std::string::npos);
  EXPECT_NE(err("    checks: [{name: a, run: x, exit_code: 300}]\n").find("must be 0..255"),
            std::string::npos);
  EXPECT_NE(err("    checks: [{name: a}]\n").find("missing required field 'run'"),
            std::string::npos);
  EXPECT_NE(err("    disk_size: 100M\n").find("must be at least 1G"), std::string::npos);
}

TEST(Definition, DiskBasesSayOrAreToldByTheirNameHowTheyArePacked) {
  using definition::BasePacking;
  using definition::packingOf;
  EXPECT_EQ(packingOf(std::nullopt, "Fedora-Cloud-Base.x86_64.raw.xz"), BasePacking::xz);
  EXPECT_EQ(packingOf(std::nullopt, "https://x/disk.raw.zst?sig=abc"), BasePacking::zstd);
  EXPECT_EQ(packingOf(std::nullopt, "bookworm64.box"), BasePacking::vagrantBox);
  EXPECT_EQ(packingOf(std::nullopt, "noble.img"), BasePacking::none);
  EXPECT_EQ(packingOf(BasePacking::none, "odd-name.xz"), BasePacking::none);
  auto def = definition::parseDefinition(
      "name: b\nbase: {url: \"https://x/y.box?v=1\", sha256: " + std::string(64, 'a') +
          ", packing: vagrant-box, format: vmdk}\n",
      "b.yaml");
  const auto& u = std::get<definition::UrlBase>(def.base);
  EXPECT_EQ(u.disk.packing, BasePacking::vagrantBox);
  EXPECT_EQ(u.disk.format, "vmdk");
  EXPECT_NE(definitionError("name: b\nbase: {path: x.img, format: iso}\n", "b.yaml")
                .find("base.format: must be qcow2, raw, vmdk, vdi, vhdx or vpc"),
            std::string::npos)
      << definitionError("name: b\nbase: {path: x.img, format: iso}\n", "b.yaml");
  EXPECT_NE(
      definitionError("name: b\nbase: {path: x.img, packing: rar}\n").find("base.packing: must be"),
      std::string::npos);
  EXPECT_NE(definitionError("name: b\nbase:\n  debootstrap: {suite: bookworm}\n  format: raw\n")
                .find("does not apply to a debootstrap base"),
            std::string::npos);
}

TEST(Definition, TreeBasesTakeTheirFileAndHowTheTreeBecomesADisk) {
  using definition::OciFormat;
  auto def = definition::parseDefinition(
      "name: r\nbase:\n  rootfs:\n    url: https://e/noble-root.tar.xz\n    sha256: " +
          std::string(64, 'b') +
          "\n    size: 4G\n    root_label: root\n    packages: [vim]\ndisk: {size: 8G}\n",
      "r.yaml");
  const auto& r = std::get<definition::RootfsBase>(def.base);
  EXPECT_EQ(r.file.url, "https://e/noble-root.tar.xz");
  EXPECT_EQ(r.tree.size, 4ull << 30);
  EXPECT_EQ(r.tree.packages, std::vector<std::string>{"vim"});
  EXPECT_EQ(def.disk.rootLabel, "root") << "the made disk's label is where the build finds it";
  EXPECT_EQ(definition::baseKind(def.base), "rootfs");

  def = definition::parseDefinition(
      "name: o\nbase:\n  oci: {path: images/debian, ref: bookworm, format: layout}\n", "o.yaml");
  const auto& o = std::get<definition::OciBase>(def.base);
  EXPECT_EQ(o.file.path, "images/debian");
  EXPECT_EQ(o.format, OciFormat::layout);
  EXPECT_EQ(o.ref, "bookworm");
  EXPECT_EQ(o.tree.rootLabel, "cloudimg-rootfs");
  EXPECT_EQ(definition::toJson(def)["base"]["oci"]["format"], "layout");

  EXPECT_NE(definitionError("name: r\nbase:\n  rootfs: {url: https://e/x.tar}\n")
                .find("base.rootfs: missing required field 'sha256'"),
            std::string::npos)
      << definitionError("name: r\nbase:\n  rootfs: {url: https://e/x.tar}\n");
  EXPECT_NE(
      definitionError("name: r\nbase:\n  rootfs: {path: ../x.tar}\n").find("must not contain '..'"),
      std::string::npos);
  EXPECT_NE(definitionError(
                "name: r\nbase:\n  rootfs: {path: x.tar}\n  sha256: " + std::string(64, 'a') + "\n")
                .find("does not apply to a rootfs base (put it inside rootfs:)"),
            std::string::npos);
  EXPECT_NE(definitionError("name: o\nbase:\n  oci: {path: x, format: docker}\n")
                .find("must be layout, oci-archive or docker-archive, got 'docker'"),
            std::string::npos);
  EXPECT_NE(definitionError("name: o\nbase:\n  oci: {url: 'https://e/x.tar', sha256: " +
                            std::string(64, 'a') + ", format: layout}\n")
                .find("a layout is a directory"),
            std::string::npos);
  EXPECT_NE(definitionError("name: o\nbase:\n  oci: {path: x, ref: 'a b'}\n")
                .find("is not an image reference"),
            std::string::npos);
  EXPECT_NE(
      definitionError("name: o\nbase:\n  oci: {path: x, size: 512M}\n").find("must be at least 1G"),
      std::string::npos);
  EXPECT_NE(definitionError("name: o\nbase:\n  oci: {path: x, size: 4G}\ndisk: {size: 2G}\n")
                .find("is smaller than the oci base's disk (4.0 GiB)"),
            std::string::npos)
      << definitionError("name: o\nbase:\n  oci: {path: x, size: 4G}\ndisk: {size: 2G}\n");
}

TEST(Definition, OutputsAreQcow2ByDefaultEachKindOnceAndTheBuildPlansTheirDigests) {
  auto plain = definition::parseDefinition(kMinimal, "tiny.yaml");
  EXPECT_EQ(plain.outputs, std::vector{definition::OutputKind::qcow2});
  const auto planned = plannedSteps(plain);
  EXPECT_EQ(std::find(planned.begin(), planned.end(), "raw_digests"), planned.end());
  // The default leaves the content digest (the result key) of existing definitions as it was.
  EXPECT_FALSE(definition::toJson(plain).contains("outputs"));

  auto both = definition::parseDefinition(std::string(kMinimal) + "outputs: [qcow2, raw]\n", "t");
  EXPECT_EQ(both.outputs,
            (std::vector{definition::OutputKind::qcow2, definition::OutputKind::raw}));
  EXPECT_EQ(definition::toJson(both).at("outputs"), nlohmann::json({"qcow2", "raw"}));
  const auto steps = plannedSteps(both);
  auto at = [&](const char* name) { return std::find(steps.begin(), steps.end(), name); };
  ASSERT_NE(at("raw_digests"), steps.end());
  EXPECT_LT(at("compact"), at("raw_digests"));  // of the compacted file, as delivered
  EXPECT_NE(definition::summarize(both).find("raw expanded from the delivered qcow2"),
            std::string::npos);

  EXPECT_NE(definitionError(std::string(kMinimal) + "outputs: [qcow2, vmdk]\n")
                .find("def.yaml:4:18: outputs[1]: 'vmdk' is not an output this version builds "
                      "(qcow2, raw, iso)"),
            std::string::npos)
      << definitionError(std::string(kMinimal) + "outputs: [qcow2, vmdk]\n");
  // A live ISO: live-boot goes in while the image is customized, the ISO is made of the
  // validated image and booted by the acceptance boot after it.
  auto live = definition::parseDefinition(std::string(kMinimal) + "outputs: [qcow2, iso]\n", "t");
  const auto liveSteps = plannedSteps(live);
  auto liveAt = [&](const char* name) {
    return std::find(liveSteps.begin(), liveSteps.end(), name);
  };
  ASSERT_NE(liveAt("live_boot"), liveSteps.end());
  ASSERT_NE(liveAt("live_iso"), liveSteps.end());
  EXPECT_LT(liveAt("mount"), liveAt("live_boot"));
  EXPECT_LT(liveAt("live_boot"), liveAt("cleanup"));
  EXPECT_LT(liveAt("validate"), liveAt("live_iso"));
  EXPECT_LT(liveAt("live_iso"), liveAt("boot_test"));
  EXPECT_EQ(std::find(planned.begin(), planned.end(), "live_iso"), planned.end());
  // An iso is its own artifact; a raw is made from the qcow2 at the controller.
  EXPECT_EQ(definition::carrierOf(definition::OutputKind::iso), definition::OutputKind::iso);
  EXPECT_EQ(definition::carrierOf(definition::OutputKind::raw), definition::OutputKind::qcow2);
  EXPECT_EQ(definition::parseOutputField(""), definition::OutputKind::qcow2);
  EXPECT_EQ(definition::parseOutputField("vmdk"), std::nullopt);
  EXPECT_EQ(definition::bootedOutputs(live),
            (std::vector{definition::OutputKind::qcow2, definition::OutputKind::iso}));
  const std::string isoOnly = std::string(kMinimal) +
                              "outputs: [qcow2, raw, iso]\n"
                              "validation: {boot_test: {outputs: [iso]}}\n";
  EXPECT_EQ(definition::bootedOutputs(definition::parseDefinition(isoOnly, "t")),
            std::vector{definition::OutputKind::iso});
  EXPECT_NE(definitionError(std::string(kMinimal) + "validation: {boot_test: {outputs: [iso]}}\n")
                .find("boots iso, which is not among the outputs (qcow2)"),
            std::string::npos);
  EXPECT_NE(definitionError(std::string(kMinimal) +
                            "outputs: [qcow2, raw]\nvalidation: {boot_test: {outputs: [raw]}}\n")
                .find("a raw is the qcow2's bytes"),
            std::string::npos);
  EXPECT_NE(definitionError(std::string(kMinimal) +
                            "outputs: [qcow2, iso]\n"
                            "validation: {boot_test: {method: nspawn, outputs: [iso]}}\n")
                .find("method nspawn boots the image's root, not an ISO"),
            std::string::npos);
  EXPECT_EQ(definition::diskFormatOf(definition::OutputKind::iso), "iso");
  EXPECT_NE(definitionError(std::string(kMinimal) + "outputs: [raw, raw]\n").find("listed twice"),
            std::string::npos);
  EXPECT_NE(definitionError(std::string(kMinimal) + "outputs: []\n").find("lists no output"),
            std::string::npos);
}

TEST(Definition, OutputDigestsRoundTripAndAMissingKindIsNamed) {
  const std::vector<definition::OutputDigests> outs{
      {definition::OutputKind::qcow2, 10, std::string(64, 'a'), std::string(128, 'b')},
      {definition::OutputKind::raw, 4096, std::string(64, 'c'), std::string(128, 'd')}};
  const auto back = definition::outputDigestsFromJson(definition::toJson(outs));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].size, 4096u);
  EXPECT_EQ(back[1].sha512, std::string(128, 'd'));
  EXPECT_EQ(definition::toJson(outs)[1].at("disk_format"), "raw");
  try {
    definition::digestsOf({outs[0]}, definition::OutputKind::raw);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "the build manifest has no raw output (it has qcow2); add raw to the "
                 "definition's outputs and build again");
  }
  auto broken = definition::toJson(outs);
  broken[1]["sha256"] = "../../etc";
  EXPECT_THROW(definition::outputDigestsFromJson(broken), Error);
  broken = definition::toJson(outs);
  broken[1]["kind"] = "vmdk";
  EXPECT_THROW(definition::outputDigestsFromJson(broken), Error);

  // A file published beside the manifest is named, never a path.
  const std::vector<definition::OutputDigests> withIso{
      {definition::OutputKind::iso, 8192, std::string(64, 'e'), std::string(128, 'f'), "x-1.iso"}};
  EXPECT_EQ(definition::outputDigestsFromJson(definition::toJson(withIso))[0].file, "x-1.iso");
  EXPECT_FALSE(definition::toJson(outs)[1].contains("file"));
  for (const char* hostile : {"../x-1.iso", "/etc/shadow", "..", ""}) {
    broken = definition::toJson(withIso);
    broken[0]["file"] = hostile;
    try {
      definition::outputDigestsFromJson(broken);
      FAIL() << hostile;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is not a file name beside the manifest"),
                std::string::npos)
          << e.what();
    }
  }
}
