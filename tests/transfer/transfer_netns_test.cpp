// The transfer plane end to end: real imgpipe-transfer processes in real network namespaces
// joined by tbf-limited veth links (tests/support/netns.h). Files are kept small and links fast
// where the case allows, so the whole suite stays within a few minutes.
#include <signal.h>

#include <fstream>
#include <thread>

#include "common/file_util.h"
#include "tests/transfer/transfer_fixture.h"

namespace imgpipe::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

void chain(NetTopology& net, const std::string& rate) {
  net.addHost("build");
  net.addHost("relay");
  net.addHost("ctrl");
  net.link("build", "relay", {rate});
  net.link("relay", "ctrl", {rate});
}

// Waits until `journal` lists at least `chunks` chunks (16-byte header, 8 bytes a record).
bool waitForJournal(const fs::path& journal, std::uint32_t chunks, std::chrono::seconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    std::error_code ec;
    auto size = fs::file_size(journal, ec);
    if (!ec && size >= 16 + 8ull * chunks) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST_F(TransferNetTest, FullTransferThroughRelayIsByteIdentical) {
  chain(*net_, "200mbit");
  auto file = makeFile("image", 24 << 20, 1);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  auto relayd = relay("relay", "build", "ctrl", a, {"ctrl"});
  auto r = fetch("ctrl", "relay", a);
  ASSERT_EQ(r.command.exitCode, 0) << r.tail() << relayd->log();
  EXPECT_EQ(r.via, "full");
  EXPECT_TRUE(sameContent(file, artifactData("ctrl", a)));
  EXPECT_TRUE(relayd->waitForLog("fetched", 10s)) << relayd->log();
  EXPECT_TRUE(sameContent(file, artifactData("relay", a)));
}

TEST_F(TransferNetTest, AnUnlistedKeyIsRefused) {
  net_->addHost("build");
  net_->addHost("ctrl");
  net_->link("build", "ctrl", {"200mbit"});
  auto a = import("build", makeFile("image", 1 << 20, 2), "img", "1");
  auto server = serve("build", "ctrl", {"relay"});  // ctrl's key is not among them
  const auto config = dir() / "short-auth.yaml";
  std::ofstream(config) << "transfer:\n  auth_fail_timeout: 3s\n";
  auto r = fetch("ctrl", "build", a, {"--config", config.string()}, 60s);
  EXPECT_NE(r.command.exitCode, 0);
  EXPECT_NE(r.tail().find("refused our key"), std::string::npos) << r.tail();
  EXPECT_NE(server->log().find("not authorized"), std::string::npos) << server->log();
  EXPECT_FALSE(fs::exists(artifactData("ctrl", a)));
}

struct Outage {
  int seconds;
  bool blackhole;  // silence instead of a link that goes down
};

class LinkOutage : public TransferNetTest, public ::testing::WithParamInterface<Outage> {};

TEST_P(LinkOutage, ResumesWithoutStartingOver) {
  const Outage outage = GetParam();
  net_->addHost("build");
  net_->addHost("relay");
  net_->link("build", "relay", {"40mbit"});
  const std::uint64_t size = 48 << 20;  // ~11 s at 40 Mbit/s
  auto file = makeFile("image", size, 3);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  const auto before = net_->counters("build", "relay");
  const auto t0 = std::chrono::steady_clock::now();
  auto p = startFetch("relay", "build", a);
  std::this_thread::sleep_until(t0 + 3s);
  if (outage.blackhole)
    net_->blackhole("build", "relay", true);
  else
    net_->linkDown("build", "relay");
  std::this_thread::sleep_until(t0 + 3s + std::chrono::seconds(outage.seconds));
  if (outage.blackhole)
    net_->blackhole("build", "relay", false);
  else
    net_->linkUp("build", "relay");
  auto result = p->wait();
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(result.exitCode, 0) << result.stdoutText;
  EXPECT_TRUE(sameContent(file, artifactData("relay", a)));
  EXPECT_EQ(result.stdoutText.find("reconnects 0\n"), std::string::npos)
      << "the outage went unnoticed?\n"
      << result.stdoutText;
  const auto wire = net_->counters("build", "relay").txBytes - before.txBytes;
  // Framing costs ~4.6% at MTU 1500; starting over would cost 3 s of transfer (~30%) more.
  EXPECT_LT(double(wire) / size, 1.08) << wire;
  // ~11 s of transfer, the outage, and resuming within a couple of seconds of the link's return.
  EXPECT_LT(total, 11.5 + outage.seconds + 4.0);
}

INSTANTIATE_TEST_SUITE_P(DownAndBlackholed, LinkOutage,
                         ::testing::Values(Outage{10, false}, Outage{40, false}, Outage{10, true}));

TEST_F(TransferNetTest, RelayKilledMidTransferResumesAfterRestart) {
  chain(*net_, "40mbit");
  const std::uint64_t size = 32 << 20;
  auto file = makeFile("image", size, 4);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  const auto before = net_->counters("build", "relay");
  auto relayd = relay("relay", "build", "ctrl", a, {"ctrl"});
  auto ctrl = startFetch("ctrl", "relay", a);
  const auto journal = store("relay") / "objects" / a.id / "journal";
  ASSERT_TRUE(waitForJournal(journal, 12, 30s)) << relayd->log();
  relayd->kill(SIGKILL);
  std::this_thread::sleep_for(1s);
  auto restarted = relay("relay", "build", "ctrl", a, {"ctrl"});
  auto result = ctrl->wait();
  ASSERT_EQ(result.exitCode, 0) << result.stdoutText << restarted->log();
  EXPECT_TRUE(sameContent(file, artifactData("ctrl", a)));
  EXPECT_TRUE(restarted->waitForLog("fetched", 20s)) << restarted->log();
  EXPECT_NE(restarted->log().find("resuming"), std::string::npos) << restarted->log();
  // The relay picked up where it was: at most what was in flight came over the first hop twice.
  const auto wire = net_->counters("build", "relay").txBytes - before.txBytes;
  EXPECT_LT(double(wire) / size, 1.12) << wire;
  EXPECT_EQ(result.stdoutText.find("reconnects 0\n"), std::string::npos) << result.stdoutText;
}

TEST_F(TransferNetTest, AChunkDamagedOnTheRelaysDiskIsFetchedAgainNeverForwarded) {
  chain(*net_, "200mbit");
  auto file = makeFile("image", 16 << 20, 5);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  auto relayd = relay("relay", "build", "ctrl", a, {"ctrl"});
  ASSERT_TRUE(relayd->waitForLog("fetched", 30s)) << relayd->log();
  {
    std::fstream f(artifactData("relay", a), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((3 << 20) + 1000);
    f.write("\xde\xad\xbe\xef damaged on disk", 20);
  }
  auto r = fetch("ctrl", "relay", a);
  ASSERT_EQ(r.command.exitCode, 0) << r.tail() << relayd->log();
  EXPECT_TRUE(sameContent(file, artifactData("ctrl", a)));
  EXPECT_NE(r.out().find("bad_chunks 0\n"), std::string::npos)
      << "the damaged chunk reached the controller\n"
      << r.out();
  EXPECT_NE(relayd->log().find("chunk 3 on disk does not match"), std::string::npos)
      << relayd->log();
  EXPECT_TRUE(relayd->waitForLog("repaired", 10s)) << relayd->log();
  EXPECT_TRUE(sameContent(file, artifactData("relay", a)));
}

// Two versions of a small qcow2 (compressed clusters, like a build's output), the second one
// "rebuilt": some blocks changed, some data moved.
std::pair<fs::path, fs::path> makeQcow2Pair(const fs::path& dir) {
  std::string v1(24 << 20, '\0');
  std::uint64_t x = 12345;
  for (size_t i = 0; i < v1.size(); i += 8) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    // Half text-like (compresses), half noise (does not): like a root filesystem.
    const bool noise = (i / (256 << 10)) % 2 == 0;
    for (int b = 0; b < 8; ++b)
      v1[i + b] = noise ? static_cast<char>(x >> (8 * b)) : "imgpipe "[b];
  }
  std::string v2 = v1;
  for (size_t off = 1 << 20; off < v2.size(); off += 3 << 20)
    v2.replace(off, 4096, 4096, 'x');
  v2.replace(20 << 20, 1 << 20, v1.substr(4 << 20, 1 << 20));  // data moved elsewhere
  auto raw1 = dir / "v1.raw", raw2 = dir / "v2.raw";
  std::ofstream(raw1, std::ios::binary) << v1;
  std::ofstream(raw2, std::ios::binary) << v2;
  checkCommand(
      {"qemu-img", "convert", "-c", "-O", "qcow2", raw1.string(), (dir / "v1.qcow2").string()});
  checkCommand(
      {"qemu-img", "convert", "-c", "-O", "qcow2", raw2.string(), (dir / "v2.qcow2").string()});
  return {dir / "v1.qcow2", dir / "v2.qcow2"};
}

TEST_F(TransferNetTest, DeltaToAControllerHoldingThePreviousVersion) {
  chain(*net_, "100mbit");
  auto [v1, v2] = makeQcow2Pair(dir());
  import("build", v1, "img", "1");
  auto a2 = import("build", v2, "img", "2");
  import("relay", v1, "img", "1");
  import("ctrl", v1, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  const auto before = net_->counters("build", "relay");
  auto relayd = relay("relay", "build", "ctrl", a2, {"ctrl"});
  ASSERT_TRUE(relayd->waitForLog("fetched", 60s)) << relayd->log();
  EXPECT_NE(relayd->log().find("via delta"), std::string::npos) << relayd->log();
  const auto size = fs::file_size(v2);
  const auto after = net_->counters("build", "relay");
  const auto wire = (after.txBytes - before.txBytes) + (after.rxBytes - before.rxBytes);
  EXPECT_LT(double(wire) / size, 0.25) << wire << " bytes on the wire for " << size;
  EXPECT_TRUE(sameContent(v2, artifactData("relay", a2)));
  EXPECT_NE(server->log().find("qcow2-clusters delta"), std::string::npos) << server->log();
  // The next hop holds the same basis: the relay hands on the very delta it received.
  auto r = fetch("ctrl", "relay", a2);
  ASSERT_EQ(r.command.exitCode, 0) << r.tail();
  EXPECT_EQ(r.via, "delta") << r.out();
  EXPECT_TRUE(sameContent(v2, artifactData("ctrl", a2)));
  EXPECT_EQ(relayd->log().find("computing delta"), std::string::npos) << relayd->log();
}

// The pipeline starts every hop at once: the controller asks the relay for a delta while the relay
// is still receiving the new version (itself as a delta). The relay answers "pending", not
// "fetch it whole", and the controller gets the small delta too.
TEST_F(TransferNetTest, DeltaRequestedWhileTheRelayIsStillReceivingTheTarget) {
  chain(*net_, "100mbit");
  auto [v1, v2] = makeQcow2Pair(dir());
  import("build", v1, "img", "1");
  auto a2 = import("build", v2, "img", "2");
  import("relay", v1, "img", "1");
  import("ctrl", v1, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  auto relayd = relay("relay", "build", "ctrl", a2, {"ctrl"});
  auto r = fetch("ctrl", "relay", a2);  // started at once: the relay has not got v2 yet
  ASSERT_EQ(r.command.exitCode, 0) << r.tail() << relayd->log();
  EXPECT_EQ(r.via, "delta") << r.out() << relayd->log();
  EXPECT_TRUE(sameContent(v2, artifactData("ctrl", a2)));
  ASSERT_TRUE(relayd->waitForLog("fetched", 60s)) << relayd->log();
  EXPECT_NE(relayd->log().find("via delta"), std::string::npos) << relayd->log();
}

TEST_F(TransferNetTest, DeltaOfAPlainFileAndFallbackWhenItWouldNotPay) {
  net_->addHost("build");
  net_->addHost("ctrl");
  net_->link("build", "ctrl", {"200mbit"});
  auto v1 = makeFile("v1", 8 << 20, 6);
  std::string content = readFile(v1);
  content.replace(3 << 20, 10000, 10000, 'z');
  const auto v2 = dir() / "v2";
  std::ofstream(v2, std::ios::binary) << content;
  auto unrelated = makeFile("v3", 8 << 20, 7);
  import("build", v1, "blob", "1");
  auto a2 = import("build", v2, "blob", "2");
  auto a3 = import("build", unrelated, "blob", "3");
  import("ctrl", v1, "blob", "1");
  auto server = serve("build", "ctrl", {"ctrl"});
  auto r = fetch("ctrl", "build", a2);
  ASSERT_EQ(r.command.exitCode, 0) << r.tail();
  EXPECT_EQ(r.via, "delta");
  EXPECT_TRUE(sameContent(v2, artifactData("ctrl", a2)));
  EXPECT_NE(server->log().find("rdiff+xz delta"), std::string::npos) << server->log();
  // Version 3 shares nothing with version 2: no delta is offered, the whole file comes.
  auto r3 = fetch("ctrl", "build", a3);
  ASSERT_EQ(r3.command.exitCode, 0) << r3.tail();
  EXPECT_EQ(r3.via, "full") << r3.out();
  EXPECT_TRUE(sameContent(unrelated, artifactData("ctrl", a3)));
}

TEST_F(TransferNetTest, FanOutCarriesTheBytesOnceOverTheSharedHop) {
  chain(*net_, "100mbit");
  net_->addHost("ctrl2");
  net_->link("relay", "ctrl2", {"100mbit"});
  const std::uint64_t size = 24 << 20;
  auto file = makeFile("image", size, 8);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "relay", {"relay"});
  const auto before = net_->counters("build", "relay");
  auto relayd = relay("relay", "build", "ctrl", a, {"ctrl", "ctrl2"}, {}, "tcp://*:7701");
  auto c1 = startFetch("ctrl", "relay", a);
  auto c2 = startFetch("ctrl2", "relay", a);
  auto r1 = c1->wait();
  auto r2 = c2->wait();
  ASSERT_EQ(r1.exitCode, 0) << r1.stdoutText;
  ASSERT_EQ(r2.exitCode, 0) << r2.stdoutText;
  EXPECT_TRUE(sameContent(file, artifactData("ctrl", a)));
  EXPECT_TRUE(sameContent(file, artifactData("ctrl2", a)));
  const auto shared = net_->counters("build", "relay").txBytes - before.txBytes;
  EXPECT_LT(double(shared) / size, 1.06) << "bytes over the shared hop: " << shared;
  EXPECT_GT(double(net_->counters("relay", "ctrl").txBytes) / size, 1.0);
  EXPECT_GT(double(net_->counters("relay", "ctrl2").txBytes) / size, 1.0);
}

TEST_F(TransferNetTest, TheRateLimitCapsTheLink) {
  net_->addHost("build");
  net_->addHost("ctrl");
  net_->link("build", "ctrl", {"200mbit"});
  const std::uint64_t size = 10 << 20;
  auto a = import("build", makeFile("image", size, 10), "img", "1");
  auto server = serve("build", "ctrl", {"ctrl"});
  auto r = fetch("ctrl", "build", a, {"--rate", "20mbit"});
  ASSERT_EQ(r.command.exitCode, 0) << r.tail();
  // 10 MiB at 20 Mbit/s is 4.2 s; unlimited it would take under a second.
  EXPECT_GT(r.seconds, 3.6);
  EXPECT_LT(r.seconds, 6.0);
}

TEST_F(TransferNetTest, AReceiverWithoutEnoughDiskRefusesCleanly) {
  net_->addHost("build");
  net_->addHost("ctrl");
  net_->link("build", "ctrl", {"200mbit"});
  auto a = import("build", makeFile("image", 24 << 20, 9), "img", "1");
  auto server = serve("build", "ctrl", {"ctrl"});
  // The controller's store on an 8 MiB filesystem, mounted in a private mount namespace that
  // goes away with the process.
  const auto small = store("ctrl");
  fs::create_directories(small);
  SubprocessOptions o;
  o.argv = net_->inHost("ctrl", {"unshare",
                                 "-m",
                                 "--propagation",
                                 "private",
                                 "sh",
                                 "-c",
                                 "mount -t tmpfs -o size=8m tmpfs \"$0\" && exec \"$@\"",
                                 small.string(),
                                 transferTool().string(),
                                 "fetch",
                                 "--store",
                                 small.string(),
                                 "--from",
                                 endpoint("build", "ctrl"),
                                 "--server-key",
                                 pub("build").string(),
                                 "--key",
                                 key("ctrl").string(),
                                 "--artifact",
                                 a.id,
                                 "--manifest-digest",
                                 a.digest});
  o.timeout = 30s;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = runCommand(o);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(r.exitCode, 4);
  std::string err;
  for (const auto& l : r.tail)
    err += l + "\n";
  EXPECT_NE(err.find("not enough disk space in " + small.string()), std::string::npos) << err;
  EXPECT_NE(err.find("needs 24.0 MiB"), std::string::npos) << err;
  EXPECT_NE(err.find("available"), std::string::npos) << err;
}

}  // namespace
}  // namespace imgpipe::test

namespace imgpipe::test {
namespace {

// The congestion controls of the established TCP connections on `port` in `host`, as the
// kernel reports them (`ss -ti`).
std::string congestionOnPort(NetTopology& net, const std::string& host, int port) {
  auto r = run(net.inHost(
      host, {"ss", "-Htin", "state", "established", "sport", "=", ":" + std::to_string(port)}));
  std::string found;
  for (const char* cc : {"bbr", "cubic", "reno"})
    if (r.out.find(std::string(" ") + cc + " ") != std::string::npos) found += cc;
  return found;
}

// Waits (up to 30 s) for the artifact server on `host` to hold a connection, and says what
// congestion control the kernel runs it with.
std::string serverCongestionOnceConnected(NetTopology& net, const std::string& host) {
  std::string seen;
  waitUntil(
      [&] {
        seen = congestionOnPort(net, host, 7701);
        return !seen.empty();
      },
      30s);
  return seen;
}

// A long, lossy path (200 ms round trip, 1 % loss each way) between hosts left at cubic: the
// server's connections run BBR anyway (the data flows from there), the fetch keeps one
// connection throughout, and the bytes arrive intact.
TEST_F(TransferNetTest, ALongLossyLinkKeepsOneConnectionAndTheServerRunsBbr) {
  std::string why;
  if (!NetTopology::canDelay(&why)) GTEST_SKIP() << why;
  constexpr const char* kAvailable = "/proc/sys/net/ipv4/tcp_available_congestion_control";
  if (readFile(kAvailable).find("bbr") == std::string::npos) {
    (void)run({"modprobe", "tcp_bbr"});
    if (readFile(kAvailable).find("bbr") == std::string::npos)
      GTEST_SKIP() << "this kernel has no BBR (tcp_bbr)";
  }
  net_->addHost("build");
  net_->addHost("ctrl");
  LinkOptions link{"20mbit"};
  link.delay = 100ms;
  link.lossPercent = 1;
  net_->link("build", "ctrl", link);
  auto file = makeFile("image", 12 << 20, 21);
  auto a = import("build", file, "img", "1");
  auto server = serve("build", "ctrl", {"ctrl"});
  auto fetching = startFetch("ctrl", "build", a);
  const std::string seen = serverCongestionOnceConnected(*net_, "build");
  auto r = fetching->wait();
  ASSERT_EQ(r.exitCode, 0) << r.stdoutText;
  EXPECT_EQ(seen, "bbr") << "the server's end of the connection";
  EXPECT_NE(r.stdoutText.find("reconnects 0\n"), std::string::npos) << r.stdoutText;
  EXPECT_NE(r.stdoutText.find("congestion bbr\n"), std::string::npos) << r.stdoutText;
  EXPECT_TRUE(sameContent(file, artifactData("ctrl", a)));
  EXPECT_EQ(server->log().find("host's default"), std::string::npos) << server->log();
}

// `congestion: system` leaves the host's default on both ends (a link shared with users).
TEST_F(TransferNetTest, CongestionSystemKeepsTheHostsDefault) {
  net_->addHost("build");
  net_->addHost("ctrl");
  net_->link("build", "ctrl", {"20mbit"});
  auto a = import("build", makeFile("image", 4 << 20, 22), "img", "1");
  const auto config = dir() / "system-cc.yaml";
  std::ofstream(config) << "transfer:\n  congestion: system\n";
  auto server = std::make_unique<NetDaemon>(
      *net_, "build",
      std::vector<std::string>{transferTool().string(), "serve", "--store", store("build").string(),
                               "--listen", endpoint("build", "ctrl"), "--key",
                               key("build").string(), "--allow", pub("ctrl").string(), "--config",
                               config.string()},
      dir() / "build-serve-system.log");
  ASSERT_TRUE(server->waitForLog("listening", 10s)) << server->log();
  auto fetching = startFetch("ctrl", "build", a, {"--config", config.string()});
  const std::string seen = serverCongestionOnceConnected(*net_, "build");
  auto r = fetching->wait();
  ASSERT_EQ(r.exitCode, 0) << r.stdoutText;
  EXPECT_EQ(seen, "cubic");
  EXPECT_NE(r.stdoutText.find("congestion cubic\n"), std::string::npos) << r.stdoutText;
}

}  // namespace
}  // namespace imgpipe::test
