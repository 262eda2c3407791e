// The sandbox of the image's commands, run for real on a loop-attached copy of the fixture base
// (no build around it: seconds, not minutes): its capability sets, no_new_privs, its own /proc
// and /dev, the network modes, processes left running, and update-grub resolving the root
// device (what keeps a kernel upgrade writing root=UUID=... into grub.cfg).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agent-build/disk/attached_disk.h"
#include "agent-build/disk/qemu_img.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/mount.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "tests/build/support/build_fixture.h"
#include "tests/support/process.h"
#include "tests/support/test_daemons.h"

using namespace imgpipe;
using namespace imgpipe::build;
using namespace imgpipe::build::test;

namespace {

// The kept capabilities as a /proc/PID/status mask.
std::uint64_t keptMask() {
  static const std::map<std::string, int> numbers = {
      {"CAP_CHOWN", 0},       {"CAP_DAC_OVERRIDE", 1}, {"CAP_FOWNER", 3},
      {"CAP_FSETID", 4},      {"CAP_KILL", 5},         {"CAP_SETGID", 6},
      {"CAP_SETUID", 7},      {"CAP_SETPCAP", 8},      {"CAP_NET_BIND_SERVICE", 10},
      {"CAP_SYS_CHROOT", 18}, {"CAP_AUDIT_WRITE", 29}, {"CAP_SETFCAP", 31}};
  std::uint64_t mask = 0;
  for (const auto& name : sandboxCapabilities())
    mask |= 1ull << numbers.at(name);
  return mask;
}

std::map<std::string, std::string> statusFields(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = v;
  }
  return out;
}

// Interface names in a /proc/net/dev text.
std::set<std::string> interfaces(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos || line.find('|') != std::string::npos) continue;
    auto name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    out.insert(name);
  }
  return out;
}

bool processRunning(const std::string& marker) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    auto pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    try {
      auto cmdline = readFile(e.path() / "cmdline");
      if (cmdline.find(marker) != std::string::npos) return true;
    } catch (const Error&) {
    }
  }
  return false;
}

// An IPv4 address of `host`, as this host resolves it.
std::string ipv4Of(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), "80", &hints, &found) != 0 || !found) return {};
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, buf, sizeof buf);
  ::freeaddrinfo(found);
  return buf;
}

// The fixture base as a build sees it after the mount step: raw copy, loop device with
// partitions, root mounted nodev/nosuid, a session over it.
class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fixtureBase(); }

  void SetUp() override {
    area_ = std::make_unique<TestArea>("sandbox");
    const auto raw = area_->work() / "disk.raw";
    qemuImgConvert(exec_, ConvertOptions{.source = fixtureBase().file,
                                         .sourceFormat = "qcow2",
                                         .target = raw,
                                         .targetFormat = "raw"});
    disk_ = std::make_unique<LoopDisk>(raw, false, exec_);
    parts_ = disk_->partitions(exec_);
    root_ = findRootPartition(parts_, "cloudimg-rootfs");
    fs::create_directories(area_->work() / "root");
    mount_.emplace(root_.device.string(), area_->work() / "root", root_.fsType,
                   MS_NODEV | MS_NOSUID);
    session_ = std::make_unique<ChrootSession>(area_->work() / "root", options(), exec_);
  }

  void TearDown() override {
    session_.reset();
    mount_.reset();
    disk_.reset();
    const auto root = area_->root();
    area_.reset();
    for (const auto& l : leftoversUnder(root))
      ADD_FAILURE() << "left behind: " << l;
  }

  ChrootOptions options() const {
    return ChrootOptions{{}, disk_->device(), parts_, agentBinary()};
  }

  std::string capture(const std::string& script,
                      definition::Network net = definition::Network::none) {
    auto o = session_->commandOptions({"/bin/sh", "-c", script}, {}, net);
    o.captureStdout = true;
    return session_->run(std::move(o));
  }

  ExecContext exec_;
  std::unique_ptr<TestArea> area_;
  std::unique_ptr<LoopDisk> disk_;
  std::vector<Partition> parts_;
  Partition root_;
  std::optional<Mount> mount_;
  std::unique_ptr<ChrootSession> session_;
};

}  // namespace

TEST_F(SandboxTest, CapabilitiesAreBoundedAndNoNewPrivsIsSet) {
  auto f = statusFields(capture("cat /proc/self/status"));
  const auto hex = [](std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  const auto kept = hex(keptMask());
  EXPECT_EQ(f["CapBnd"], kept) << "the bounding set is what any later execve could reach";
  EXPECT_EQ(f["CapEff"], kept);
  EXPECT_EQ(f["CapPrm"], kept);
  EXPECT_EQ(f["NoNewPrivs"], "1");
  // And a child of a child stays there (root's execve would refill permitted from the bounding
  // set if that were still full).
  auto inner = statusFields(capture("sh -c 'cat /proc/self/status'"));
  EXPECT_EQ(inner["CapEff"], kept);
  EXPECT_EQ(inner["CapBnd"], kept);
}

TEST_F(SandboxTest, OwnProcAndDevWithOnlyTheBuildDisk) {
  // /proc/1 is the sandbox's init, whose root is the image: not the build's PID 1 (host root).
  EXPECT_EQ(capture("readlink /proc/1/root"), "/\n");
  EXPECT_EQ(capture("cat /etc/hostname"), readFile(area_->work() / "root/etc/hostname"));
  const auto marker = area_->root() / "host-only";
  writeFileAtomic(marker, "host");
  EXPECT_EQ(capture("test -e /proc/1/root" + marker.string() + " && echo visible || echo hidden"),
            "hidden\n");
  EXPECT_EQ(capture("echo /proc/[0-9]*"), "/proc/1 /proc/2\n") << "bwrap's init and sh only";

  std::set<std::string> expected = {disk_->device().filename().string()};
  for (const auto& p : parts_)
    expected.insert(p.device.filename().string());
  std::set<std::string> blocks;
  std::istringstream in(
      capture("for d in /dev/* /dev/*/* /dev/*/*/*; do "
              "[ -b \"$d\" ] && [ ! -L \"$d\" ] && echo \"${d##*/}\"; done; true"));
  for (std::string l; std::getline(in, l);)
    blocks.insert(l);
  EXPECT_EQ(blocks, expected);
  EXPECT_EQ(capture("readlink /dev/disk/by-uuid/" + root_.uuid),
            "../../" + root_.device.filename().string() + "\n");
  EXPECT_EQ(capture("readlink /dev/disk/by-label/cloudimg-rootfs"),
            "../../" + root_.device.filename().string() + "\n");
  EXPECT_EQ(capture("stat -c %a /dev/shm"), "1777\n");
  // Host-wide sysctls (kernel.core_pattern) are read-only.
  EXPECT_NE(capture("grep ' /proc/sys ' /proc/self/mountinfo").find(" ro,"), std::string::npos);
  // The image's own files cannot be device nodes that open anything: nodev.
  EXPECT_NE(capture("grep ' / ' /proc/self/mounts"), "");
  EXPECT_NE(capture("grep ' / ' /proc/self/mounts").find("nodev"), std::string::npos);
}

// network: host (issue 23) is a namespace of the session's own whose way out is slirp4netns:
// the mirror answers, the host's loopback services and abstract sockets do not; none has only lo.
TEST_F(SandboxTest, NetworkHostReachesTheMirrorButNothingOfTheHost) {
  const auto host = definition::Network::host;
  EXPECT_EQ(interfaces(capture("cat /proc/net/dev", host)), (std::set<std::string>{"lo", "tap0"}));
  EXPECT_EQ(interfaces(capture("cat /proc/net/dev", definition::Network::none)),
            std::set<std::string>{"lo"});
  // A service on the host's 127.0.0.1 and an abstract socket of the host, both listening.
  HostBait bait;
  const auto port = bait.loopbackPortText();
  const auto& name = bait.abstractName();
  for (const auto& target : {"127.0.0.1", "10.0.2.2"})
    EXPECT_EQ(capture(std::string("timeout 5 bash -c 'exec 3<>/dev/tcp/") + target + "/" + port +
                          "' 2>/dev/null && echo reached || echo unreachable",
                      host),
              "unreachable\n")
        << target;
  EXPECT_EQ(capture("python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); "
                    "s.connect(\"\\0" +
                        name + "\"); print(\"reached\")' 2>/dev/null || echo unreachable",
                    host),
            "unreachable\n");
  // The mirror answers (what apt and the scripts need of network: host).
  EXPECT_EQ(capture("timeout 20 bash -c 'exec 3<>/dev/tcp/deb.debian.org/80' 2>/dev/null && echo "
                    "reached || echo unreachable",
                    host),
            "reached\n");
}

// network: proxy (issue 9): the commands in the image reach the build agent's proxy and nothing
// else — not the mirror's address, not the host's interfaces — and the image keeps no trace of
// the proxy.
TEST_F(SandboxTest, NetworkProxyReachesTheProxyAndNothingElse) {
  imgpipe::test::Tinyproxy proxy(area_->root() / "proxy");
  const auto mirror = ipv4Of("deb.debian.org");
  ASSERT_FALSE(mirror.empty()) << "this host cannot resolve deb.debian.org";
  session_.reset();
  auto o = options();
  o.proxy = BuildProxy{proxy.url(), "", ""};
  o.network = definition::Network::proxy;
  o.gateFile = area_->work() / "proxy-netns";
  session_ = std::make_unique<ChrootSession>(area_->work() / "root", o, exec_);
  const auto host = definition::Network::host;  // what apt and scripts ask for

  EXPECT_EQ(interfaces(capture("cat /proc/net/dev", host)), std::set<std::string>{"lo"});
  EXPECT_EQ(capture("echo $http_proxy $https_proxy", host),
            "http://127.0.0.1:3128 http://127.0.0.1:3128\n");
  // apt's downloads go through the gate to the proxy, which logs them.
  session_->run(session_->commandOptions(
      {"apt-get", "-o", "Acquire::Languages=none", "-o", "Acquire::Retries=0", "update"}, {},
      host));
  EXPECT_NE(proxy.log().find("GET http://deb.debian.org/"), std::string::npos) << proxy.log();
  // A command that ignores the proxy reaches nothing: not the mirror, not the host's resolver.
  EXPECT_EQ(capture("timeout 10 bash -c 'exec 3<>/dev/tcp/" + mirror +
                        "/80' 2>/dev/null && echo reached || echo unreachable",
                    host),
            "unreachable\n");
  EXPECT_EQ(capture("getent hosts deb.debian.org >/dev/null && echo resolved || echo no-dns", host),
            "no-dns\n");
  // A command that asked for no network has none, gate or not.
  EXPECT_EQ(capture("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128' 2>/dev/null && echo "
                    "reached || echo unreachable"),
            "unreachable\n");
  // Nothing of the proxy is written into the image.
  EXPECT_EQ(capture("grep -rIl -e 127.0.0.1:3128 -e '" + proxy.url() + "' /etc 2>/dev/null; true"),
            "");
  session_.reset();
  EXPECT_FALSE(fs::exists(o.gateFile)) << "the gate's namespace file outlived the session";
}

TEST_F(SandboxTest, NetworkProxyWithoutBuildProxyIsRefused) {
  session_.reset();
  auto o = options();
  o.network = definition::Network::proxy;
  o.gateFile = area_->work() / "proxy-netns";
  try {
    ChrootSession s(area_->work() / "root", o, exec_);
    ADD_FAILURE() << "a network: proxy session started without build.proxy";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("build.proxy"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.gateFile));
}

TEST_F(SandboxTest, NothingOutlivesItsCommand) {
  // A daemon the command started, even one that left its session, dies with the command.
  const auto start = std::chrono::steady_clock::now();
  capture("sleep 987651 >/dev/null 2>&1 & setsid sh -c 'sleep 987652' >/dev/null 2>&1 & echo ok");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_FALSE(processRunning("987651"));
  EXPECT_FALSE(processRunning("987652"));
}

TEST_F(SandboxTest, UpdateGrubWritesRootByUuid) {
  // What a kernel upgrade runs (zz-update-grub): grub-probe finds / through the partition node
  // and /dev/disk/by-uuid in the sandbox's /dev.
  session_->run({"update-grub"});
  auto cfg = readFile(area_->work() / "root/boot/grub/grub.cfg");
  EXPECT_NE(cfg.find("root=UUID=" + root_.uuid), std::string::npos) << cfg.substr(0, 4000);
  EXPECT_EQ(cfg.find("root=/dev/loop"), std::string::npos);
}

TEST_F(SandboxTest, MountPointsBehindSymlinksAreRefused) {
  // What a hostile base could ship: the kernel would resolve these on the host.
  const auto root = area_->work() / "root";
  const auto decoy = area_->root() / "decoy";
  fs::create_directories(decoy / "apt/archives");
  fs::rename(root / "var/cache", root / "var/cache.real");
  fs::create_symlink(decoy, root / "var/cache");
  try {
    auto m = session_->bindInto(area_->cache(), "/var/cache/apt/archives");
    ADD_FAILURE() << "bound the apt cache through a symlink";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/var/cache in the image is a symlink"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(isMountPoint(decoy / "apt/archives"));

  session_.reset();
  fs::rename(root / "proc", root / "proc.real");
  fs::create_symlink("/etc", root / "proc");
  try {
    ChrootSession again(root, ChrootOptions{{}, disk_->device(), parts_, agentBinary()}, exec_);
    ADD_FAILURE() << "a session over a /proc symlink";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/proc in the image is a symlink"), std::string::npos)
        << e.what();
  }
}
