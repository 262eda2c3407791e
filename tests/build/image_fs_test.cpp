// ImageFs resolves every path inside the image: an untrusted image's absolute symlinks must not
// lead a root-owned build to write or remove files on the agent. And the cleanup list, applied
// to a tree, passes its own checks.
#include "agent-build/util/image_fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "agent-build/steps/cleanup_rules.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

using namespace imgpipe;
using namespace imgpipe::build;
namespace fs = std::filesystem;

TEST(ImageFs, AbsoluteSymlinksResolveInsideTheImage) {
  TempDir outside, image;
  fs::create_directories(image.path() / "etc");
  // In the image, /etc/motd points at /target — absolute, as an attacker would write it.
  fs::create_symlink(outside.path() / "victim", image.path() / "etc" / "motd");
  fs::create_symlink("/", image.path() / "etc" / "escape");
  ImageFs img(image.path());
  img.writeFile("/etc/escape" + (outside.path() / "victim").string(), "x");
  EXPECT_FALSE(fs::exists(outside.path() / "victim"));
  EXPECT_TRUE(fs::exists(image.path() / outside.path().relative_path() / "victim"));
  // Replacing a symlink replaces the link itself.
  img.writeFile("/etc/motd", "hello\n", 0600);
  EXPECT_FALSE(fs::is_symlink(image.path() / "etc" / "motd"));
  EXPECT_EQ(readFile(image.path() / "etc" / "motd"), "hello\n");
  EXPECT_EQ(fs::status(image.path() / "etc" / "motd").permissions(),
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_FALSE(fs::exists(outside.path() / "victim"));
}

TEST(ImageFs, ReadsLinksListsAndGlobs) {
  TempDir image;
  ImageFs img(image.path());
  img.writeFile("/home/a/.bash_history", "ls\n");
  img.writeFile("/home/b/.bash_history", "ls\n");
  img.writeFile("/home/b/notes", "n\n");
  img.symlink("../run/systemd/resolve/stub-resolv.conf", "/etc/resolv.conf");
  EXPECT_EQ(img.readLink("/etc/resolv.conf"), "../run/systemd/resolve/stub-resolv.conf");
  EXPECT_TRUE(img.exists("/etc/resolv.conf"));  // dangling, but there
  EXPECT_FALSE(img.readFile("/etc/resolv.conf").has_value());
  EXPECT_EQ(img.glob("/home/*/.bash_history"),
            (std::vector<std::string>{"/home/a/.bash_history", "/home/b/.bash_history"}));
  EXPECT_EQ(img.list("/home"), (std::vector<std::string>{"a", "b"}));
  img.removeTree("/home/b");
  EXPECT_EQ(img.list("/home"), std::vector<std::string>{"a"});
}

TEST(Cleanup, CleansATreeAndItsChecksAgree) {
  TempDir image;
  ImageFs img(image.path());
  img.writeFile("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0444);
  img.writeFile("/var/lib/dbus/machine-id", "0123\n");
  img.writeFile("/etc/ssh/ssh_host_ed25519_key", "secret");
  img.writeFile("/etc/ssh/sshd_config", "keep me");
  img.writeFile("/root/.bash_history", "history");
  img.writeFile("/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "x");
  img.mkdirs("/var/lib/apt/lists/partial");
  img.writeFile("/var/cache/apt/pkgcache.bin", "x");
  img.writeFile("/var/cache/apt/archives/curl.deb", "x");
  img.writeFile("/var/log/syslog", "lots of logs");
  img.writeFile("/var/log/syslog.1", "older logs");
  img.writeFile("/var/log/apt/history.log.2.gz", "gz");
  img.writeFile("/var/lib/cloud/instances/i-1/user-data", "x");
  img.writeFile("/tmp/build-leftover", "x");
  img.writeFile("/var/tmp/.hidden", "x");
  img.writeFile("/var/lib/systemd/random-seed", "x");
  img.writeFile("/opt/scratch/file", "x");

  definition::CleanupSpec spec;
  auto before = checkImageIsClean(img, spec);
  EXPECT_TRUE(std::any_of(before.begin(), before.end(), [](const Check& c) { return !c.ok; }));

  spec.remove = {"/opt/scratch"};
  auto report = cleanImage(img, spec);
  EXPECT_GT(report.removed, 10u);
  EXPECT_EQ(report.truncated, 1u);
  for (const auto& c : checkImageIsClean(img, spec))
    EXPECT_TRUE(c.ok) << c.name << ": " << c.detail;
  EXPECT_EQ(readFile(image.path() / "etc/machine-id"), "");
  EXPECT_TRUE(fs::exists(image.path() / "etc/ssh/sshd_config"));
  EXPECT_TRUE(fs::exists(image.path() / "var/log/syslog"));  // emptied, not removed
  EXPECT_EQ(fs::file_size(image.path() / "var/log/syslog"), 0u);
  EXPECT_TRUE(fs::is_directory(image.path() / "var/lib/apt/lists/partial"));
  EXPECT_TRUE(fs::is_directory(image.path() / "var/lib/cloud"));
}
