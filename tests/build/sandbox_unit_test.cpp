// The sandbox's command line and what a base image's blkid values may become in it, without
// running anything (the build tests run it for real: sandbox_test, isolation_test).
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "agent-build/disk/partitions.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/sandbox/sandbox.h"
#include "agent-build/sandbox/seccomp_filter.h"

using namespace imgpipe;
using namespace imgpipe::build;

namespace {

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The options before the second "--" (sandbox-exec's, then bwrap's), then the command.
std::pair<std::vector<std::string>, std::vector<std::string>> split(
    const std::vector<std::string>& argv) {
  auto first = std::find(argv.begin(), argv.end(), "--");
  auto dash = first == argv.end() ? first : std::find(first + 1, argv.end(), "--");
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
  SandboxSpec spec{"/var/work/root", {}, {}, "/usr/bin/imgpipe-agent-build", "/run/n/netns"};
  auto [opts, cmd] =
      split(sandboxCommand(spec, definition::Network::host, {"apt-get", "install", "-y", "x"}));
  EXPECT_EQ(opts.at(0), "/usr/bin/imgpipe-agent-build");
  EXPECT_EQ(opts.at(1), "sandbox-exec");
  EXPECT_EQ(cmd, (std::vector<std::string>{"apt-get", "install", "-y", "x"}));
  for (const char* o :
       {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"})
    EXPECT_TRUE(has(opts, o)) << o;
  // network: host is a namespace of the sandbox's own (the slirp gate's), never the host's.
  EXPECT_FALSE(has(opts, "--unshare-net"));
  EXPECT_EQ(following(opts, "--netns"), std::vector<std::string>{"/run/n/netns"});
  SandboxSpec noNetns = spec;
  noNetns.netns.clear();
  EXPECT_THROW(sandboxCommand(noNetns, definition::Network::host, {"true"}), Error);
  EXPECT_THROW(sandboxCommand(noNetns, definition::Network::proxy, {"true"}), Error);
  // bind (nodev, nosuid), never dev-bind, for the image root.
  // The image as sandbox-exec staged it: an idmapped clone of the host path.
  auto binds = following(opts, "--bind");
  EXPECT_EQ(binds, std::vector<std::string>{stagedTree(0)});
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

  // The containment every sandbox gets: the unprivileged host range, the image idmapped.
  EXPECT_EQ(following(opts, "--userns"),
            std::vector<std::string>{std::to_string(UidRange::kDefaultBase)});
  EXPECT_EQ(following(opts, "--idmap"), std::vector<std::string>{"/var/work/root"});

  auto none = split(sandboxCommand(spec, definition::Network::none, {"true"})).first;
  EXPECT_TRUE(has(none, "--unshare-net"));
  EXPECT_EQ(describeSandboxed(sandboxCommand(spec, definition::Network::none, {"apt-get", "-y"})),
            "apt-get -y (in the image sandbox)");
}

TEST(Sandbox, TheBuildDiskIsItsOnlyBlockDeviceAndLinksStayInDev) {
  SandboxSpec spec{"/r", {}, {}, "/h", "/n"};
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
  // sandbox-exec makes each node anew, owned by the sandbox's root; bwrap binds those.
  EXPECT_EQ(following(opts, "--device"),
            (std::vector<std::string>{"/dev/loop7", "/dev/loop7p1", "/dev/loop7p14"}));
  EXPECT_EQ(following(opts, "--dev-bind"),
            (std::vector<std::string>{stagedDevice("loop7"), stagedDevice("loop7p1"),
                                      stagedDevice("loop7p14")}));
  auto links = following(opts, "--symlink");
  EXPECT_EQ(links, (std::vector<std::string>{"../../loop7p1", "../../loop7p1"}));
  EXPECT_TRUE(has(opts, "/dev/disk/by-uuid/0b0f4c1e-5f2a-4a57-9c1d-6a8e2b3c4d5e"));
  EXPECT_TRUE(has(opts, "/dev/disk/by-label/cloudimg-rootfs"));

  // A link name that would leave /dev is refused even if it got this far.
  SandboxSpec bad{"/r", {}, {{"disk/by-uuid/../../tmp/x", "../../loop7p1"}}, "/h", "/n"};
  EXPECT_THROW(sandboxCommand(bad, definition::Network::host, {"true"}), Error);
  SandboxSpec badDev{"/r", {{"/dev/loop7", "../sda"}}, {}, "/h", "/n"};
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

// The filter itself, installed in a real child process: what it denies fails with its errno,
// what dpkg and apt need still works.
TEST(SandboxSeccomp, DeniesKeyringsModulesUserNamespacesAndAllowsTheRest) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto program = seccompProgram();
    sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(90);
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) ::_exit(91);
    auto denied = [](long rc, int error) { return rc == -1 && errno == error; };
    int step = 1;
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    if (!denied(::syscall(SYS_keyctl, 0, -3, 0), EPERM)) ::_exit(step);
    ++step;
    if (!denied(::syscall(SYS_add_key, "user", "k", "v", 1, -3), EPERM)) ::_exit(step);
    ++step;
    if (!denied(::syscall(SYS_unshare, CLONE_NEWUSER), EPERM)) ::_exit(step);
    ++step;
    if (!denied(::syscall(SYS_clone3, nullptr, 0), ENOSYS)) ::_exit(step);
    ++step;
    if (!denied(::syscall(SYS_finit_module, -1, "", 0), EPERM)) ::_exit(step);
    ++step;
    if (!denied(::syscall(SYS_open_by_handle_at, -1, nullptr, 0), EPERM)) ::_exit(step);
    ++step;
    if (!denied(::syscall(SYS_setns, -1, 0), EPERM)) ::_exit(step);
    ++step;
    // x32 numbering of getpid: the same call under another number, refused.
    if (!denied(::syscall(0x40000000L | SYS_getpid), ENOSYS)) ::_exit(step);
    ++step;
    // What builds use: plain calls, fork, an unshare without CLONE_NEWUSER (refused for lack of
    // privilege, not by the filter: EINVAL/EPERM come from the kernel, never ENOSYS).
    if (::getpid() <= 0) ::_exit(step);
    ++step;
    const pid_t grandchild = ::fork();
    if (grandchild == 0) ::_exit(0);
    int status = 0;
    if (grandchild < 0 || ::waitpid(grandchild, &status, 0) != grandchild || status != 0)
      ::_exit(step);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "check " << WEXITSTATUS(status) << " of the child failed";
  EXPECT_FALSE(deniedSyscalls().empty());
}
