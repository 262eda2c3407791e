// The sandbox's command line and what a base image's blkid values may become in it, without
// running anything (the build tests run it for real: sandbox_test, isolation_test).
#include <gtest/gtest.h>

#include <algorithm>

#include "agent-build/disk/partitions.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/sandbox.h"

using namespace imgpipe;
using namespace imgpipe::build;

namespace {

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The options before "--" (what bwrap gets), then the command.
std::pair<std::vector<std::string>, std::vector<std::string>> split(
    const std::vector<std::string>& argv) {
  auto dash = std::find(argv.begin(), argv.end(), "--");
  return {{argv.begin(), dash}, {dash == argv.end() ? dash : dash + 1, argv.end()}};
}

std::vector<std::string> following(const std::vector<std::string>& v, const std::string& opt) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == opt) out.push_back(v[i + 1]);
  return out;
}

}  // namespace

TEST(Sandbox, CommandLineHasEveryNamespaceAndOnlyTheKeptCapabilities) {
  SandboxSpec spec{"/var/work/root", {}, {}, "/usr/bin/imgpipe-agent-build"};
  auto [opts, cmd] =
      split(sandboxCommand(spec, definition::Network::host, {"apt-get", "install", "-y", "x"}));
  EXPECT_EQ(opts.at(0), "/usr/bin/imgpipe-agent-build");
  EXPECT_EQ(opts.at(1), "sandbox-exec");
  EXPECT_EQ(cmd, (std::vector<std::string>{"apt-get", "install", "-y", "x"}));
  for (const char* o :
       {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"})
    EXPECT_TRUE(has(opts, o)) << o;
  EXPECT_FALSE(has(opts, "--unshare-net")) << "the network is shared unless the definition says";
  // bind (nodev, nosuid), never dev-bind, for the image root.
  auto binds = following(opts, "--bind");
  EXPECT_EQ(binds, std::vector<std::string>{"/var/work/root"});
  EXPECT_TRUE(following(opts, "--dev-bind").empty());
  EXPECT_EQ(following(opts, "--dev"), std::vector<std::string>{"/dev"});
  EXPECT_EQ(following(opts, "--proc"), std::vector<std::string>{"/proc"});
  EXPECT_EQ(following(opts, "--ro-bind"), (std::vector<std::string>{"/proc/sys", "/sys"}));
  EXPECT_EQ(following(opts, "--ro-bind-try"), std::vector<std::string>{"/proc/sysrq-trigger"});
  EXPECT_EQ(following(opts, "--cap-drop"), std::vector<std::string>{"ALL"});
  auto caps = following(opts, "--cap-add");
  EXPECT_EQ(caps, sandboxCapabilities());
  for (const char* forbidden :
       {"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_MKNOD", "CAP_SYS_PTRACE",
        "CAP_SYS_BOOT", "CAP_NET_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_BPF", "CAP_PERFMON"})
    EXPECT_FALSE(has(caps, forbidden)) << forbidden;
  for (const char* needed : {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
                             "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP", "CAP_SYS_CHROOT"})
    EXPECT_TRUE(has(caps, needed)) << needed;

  auto none = split(sandboxCommand(spec, definition::Network::none, {"true"})).first;
  EXPECT_TRUE(has(none, "--unshare-net"));
}

TEST(Sandbox, TheBuildDiskIsItsOnlyBlockDeviceAndLinksStayInDev) {
  SandboxSpec spec{"/r", {}, {}, "/h"};
  Partition root;
  root.number = 1;
  root.device = "/dev/loop7p1";
  root.uuid = "0b0f4c1e-5f2a-4a57-9c1d-6a8e2b3c4d5e";
  root.label = "cloudimg-rootfs";
  Partition bios;
  bios.number = 14;
  bios.device = "/dev/loop7p14";
  addDiskToSandbox(spec, "/dev/loop7", {root, bios});
  auto opts = split(sandboxCommand(spec, definition::Network::host, {"update-grub"})).first;
  EXPECT_EQ(following(opts, "--dev-bind"),
            (std::vector<std::string>{"/dev/loop7", "/dev/loop7p1", "/dev/loop7p14"}));
  auto links = following(opts, "--symlink");
  EXPECT_EQ(links, (std::vector<std::string>{"../../loop7p1", "../../loop7p1"}));
  EXPECT_TRUE(has(opts, "/dev/disk/by-uuid/0b0f4c1e-5f2a-4a57-9c1d-6a8e2b3c4d5e"));
  EXPECT_TRUE(has(opts, "/dev/disk/by-label/cloudimg-rootfs"));

  // A link name that would leave /dev is refused even if it got this far.
  SandboxSpec bad{"/r", {}, {{"disk/by-uuid/../../tmp/x", "../../loop7p1"}}, "/h"};
  EXPECT_THROW(sandboxCommand(bad, definition::Network::host, {"true"}), Error);
  SandboxSpec badDev{"/r", {{"/dev/loop7", "../sda"}}, {}, "/h"};
  EXPECT_THROW(sandboxCommand(badDev, definition::Network::host, {"true"}), Error);
}

TEST(Sandbox, HostileUuidsAndLabelsFromBlkidAreDropped) {
  Partition p;
  p.number = 2;
  p.device = "/dev/loop7p2";
  applyBlkidExport(p,
                   "DEVNAME=/dev/loop7p2\nUUID=../../tmp/x\nVERSION=1\nTYPE=crypto_LUKS\n"
                   "LABEL=../../../etc\nPART_ENTRY_TYPE=0fc63daf-8483-4772-8e79-3d69d8477de4\n");
  EXPECT_EQ(p.fsType, "crypto_LUKS");
  EXPECT_EQ(p.uuid, "");
  EXPECT_EQ(p.label, "");
  EXPECT_EQ(p.partTypeGuid, "0fc63daf-8483-4772-8e79-3d69d8477de4");
  ASSERT_EQ(p.ignored.size(), 2u);
  EXPECT_NE(p.ignored[0].find("partition 2 (/dev/loop7p2) UUID: '../../tmp/x' is not a valid "
                              "filesystem UUID"),
            std::string::npos)
      << p.ignored[0];
  EXPECT_NE(p.ignored[0].find("ignored"), std::string::npos);
  EXPECT_NE(p.ignored[1].find("partition 2 (/dev/loop7p2) label: '../../../etc' is not a valid "
                              "filesystem label"),
            std::string::npos)
      << p.ignored[1];

  SandboxSpec spec{"/r", {}, {}, "/h"};
  addDiskToSandbox(spec, "/dev/loop7", {p});
  EXPECT_TRUE(spec.links.empty());

  Partition good;
  applyBlkidExport(good, "UUID=1234-ABCD\nLABEL=UEFI\nTYPE=vfat\n");
  EXPECT_EQ(good.uuid, "1234-ABCD");
  EXPECT_EQ(good.label, "UEFI");
  EXPECT_TRUE(good.ignored.empty());
}
