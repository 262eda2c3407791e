// Hostile peers and upstreams: real processes (tests/transfer/hostile_peer.cpp) holding real,
// granted CurveZMQ keys, against a real `imgpipe-transfer serve` or `fetch`. What they try must
// cost the other side bounded memory, leave nothing in its store and nothing outside it.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "common/file_util.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "tests/support/process.h"
#include "tests/transfer/transfer_fixture.h"

using namespace imgpipe;
using namespace imgpipe::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path hostilePeer() {
  return buildDir() / "bin" / "hostile_peer";
}

// Every path under `dir` but `skip`, with size and modification time: "nothing changed" is this
// string being equal before and after.
std::string listing(const fs::path& dir, const fs::path& skip = {}) {
  std::string out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (!skip.empty() && it->path() == skip) {
      it.disable_recursion_pending();
      continue;
    }
    out += fs::relative(it->path(), dir).string();
    if (it->is_regular_file())
      out += " " + std::to_string(it->file_size()) + " " +
             std::to_string(it->last_write_time().time_since_epoch().count());
    out += "\n";
  }
  return out;
}

std::uint64_t rssKiB(pid_t pid) {
  const std::string status = readFile("/proc/" + std::to_string(pid) + "/status");
  const auto p = status.find("VmRSS:");
  if (p == std::string::npos) return 0;
  return std::stoull(status.substr(p + 6));
}

// The most a process's RSS grows above where it was at construction, sampled every 100 ms
// until stop(): what a hostile peer makes the server hold at its worst, not at the end.
class PeakRss {
 public:
  explicit PeakRss(pid_t pid)
      : pid_(pid), start_(rssKiB(pid)), peak_(start_), sampler_([this](std::stop_token stop) {
          while (!stop.stop_requested()) {
            peak_ = std::max<std::uint64_t>(peak_, rssKiB(pid_));
            std::this_thread::sleep_for(100ms);
          }
        }) {}
  void stop() {
    sampler_.request_stop();
    if (sampler_.joinable()) sampler_.join();
  }
  std::uint64_t startKiB() const { return start_; }
  double growthMiB() const {
    return (static_cast<double>(peak_) - static_cast<double>(start_)) / 1024;
  }

 private:
  pid_t pid_;
  std::uint64_t start_;
  std::atomic<std::uint64_t> peak_;
  std::jthread sampler_;  // last: it reads the members above
};

std::string hex(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

fs::path randomFile(const fs::path& path, std::uint64_t size, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (auto& c : data)
    c = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary) << data;
  return path;
}

std::string field(const std::string& out, const std::string& key) {
  auto p = out.find(key + " ");
  if (p == std::string::npos) return "";
  return out.substr(p + key.size() + 1, out.find('\n', p) - p - key.size() - 1);
}

// A basis the server has never seen: `image` with its first 64 KiB changed, so that a delta
// against it is small.
void writeMadeUpBasis(const fs::path& image, const fs::path& out) {
  std::string basis = readFile(image);
  for (std::size_t i = 0; i < (64u << 10); ++i)
    basis[i] = static_cast<char>(basis[i] ^ 0x5a);
  std::ofstream(out, std::ios::binary) << basis;
}

// Loopback: a store, keys, the real tool; no namespaces (the limits do not depend on the link).
class HostileLoopback : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(transferTool()) || !fs::exists(hostilePeer()))
      GTEST_SKIP() << "imgpipe-transfer or hostile_peer is not built";
    for (const char* k : {"server", "good", "bad"})
      checkCommand({transferTool().string(), "keygen", k, "--dir", (dir() / "keys").string()});
  }
  fs::path dir() const { return work_.path(); }
  fs::path key(const std::string& k) const { return dir() / "keys" / (k + ".key"); }
  fs::path pub(const std::string& k) const { return dir() / "keys" / (k + ".pub"); }
  fs::path store(const std::string& s) const { return dir() / ("store-" + s); }

  Imported import(const std::string& s, const fs::path& file, const std::string& version) {
    auto out = run({transferTool().string(), "import", file.string(), "--store", store(s).string(),
                    "--name", "img", "--version", version});
    EXPECT_EQ(out.exitCode, 0) << out.err;
    return {field(out.out, "artifact"), field(out.out, "manifest")};
  }
  std::unique_ptr<Daemon> serve(std::vector<std::string> extra = {}) {
    port_ = freePort();
    std::vector<std::string> argv{transferTool().string(),
                                  "serve",
                                  "--store",
                                  store("server").string(),
                                  "--listen",
                                  endpoint(),
                                  "--key",
                                  key("server").string(),
                                  "--allow",
                                  pub("good").string(),
                                  "--allow",
                                  pub("bad").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto d = std::make_unique<Daemon>(argv, dir() / "serve.log");
    EXPECT_TRUE(d->waitForLog("listening", 10s)) << d->log();
    return d;
  }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  CommandOutput hostile(std::vector<std::string> args, std::chrono::seconds timeout = 60s) {
    std::vector<std::string> argv{hostilePeer().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--to", endpoint(), "--server-key", pub("server").string(), "--key",
                             key("bad").string()});
    return run(argv, timeout);
  }
  CommandOutput fetch(const std::string& from, const std::string& serverPub, const Imported& a,
                      std::chrono::seconds timeout = 60s) {
    return run({transferTool().string(), "fetch", "--store", store("good").string(), "--from", from,
                "--server-key", serverPub, "--key", key("good").string(), "--artifact", a.id,
                "--manifest-digest", a.digest},
               timeout);
  }

  TempDir work_{fs::temp_directory_path(), "imgpipe-hostile-"};
  int port_ = 0;
};

}  // namespace

TEST_F(HostileLoopback, A64MiBFrameIsRefusedByTheServerWhichGoesOnServing) {
  auto a = import("server", randomFile(dir() / "image", 3 << 20, 1), "1");
  auto server = serve();
  const auto rssBefore = rssKiB(server->pid());
  auto out = hostile({"bigframe"});
  EXPECT_EQ(out.exitCode, 0) << out.out << out.err;
  EXPECT_NE(out.out.find("dropped"), std::string::npos) << out.out;
  EXPECT_TRUE(server->running());
  EXPECT_LT(rssKiB(server->pid()), rssBefore + 32 * 1024) << "the frame was read into memory";
  auto good = fetch(endpoint(), pub("server").string(), a);
  EXPECT_EQ(good.exitCode, 0) << good.err;
}

TEST_F(HostileLoopback, AHostileServersBigFrameIsRefusedByTheFetcher) {
  auto a = import("server", randomFile(dir() / "image", 1 << 20, 2), "1");
  port_ = freePort();
  Daemon up({hostilePeer().string(), "upstream", "--listen", endpoint(), "--key",
             key("server").string(), "--file", (dir() / "image").string(), "--name", "img",
             "--version", "1", "--mode", "bigframe"},
            dir() / "upstream.log");
  ASSERT_TRUE(up.waitForLog("listening", 10s)) << up.log();
  auto out = fetch(endpoint(), pub("server").string(), a, 8s);
  EXPECT_NE(out.exitCode, 0);
  EXPECT_TRUE(up.waitForLog("dropped after the big frame", 5s))
      << "the fetcher took a 64 MiB frame: " << up.log();
  EXPECT_EQ(out.err.find("undecodable"), std::string::npos) << out.err;
  EXPECT_FALSE(fs::exists(store("good") / "objects" / a.id / "complete"));
}

TEST_F(HostileLoopback, FiftySignatureUploadsUnderMadeUpBasisIdsLeaveNothingInTheStore) {
  auto a = import("server", randomFile(dir() / "image", 2 << 20, 3), "1");
  std::ofstream(dir() / "limits.yaml") << "transfer:\n  limits:\n    upload_timeout: 2s\n";
  auto server = serve({"--config", (dir() / "limits.yaml").string()});
  const std::string before = listing(store("server"));
  auto out = hostile({"signatures", "--target", a.id, "--count", "50"});
  EXPECT_EQ(out.exitCode, 0) << out.out << out.err;
  // Uploads beyond the per-key cap are refused: read from the server's log, not from what the
  // peer got back. This peer sends all 83 messages before it reads, and a reply that finds its
  // connection's queue full (a high-water mark sized for chunks: 2 messages by default) is not
  // kept for it, so under load the peer may hear none of the refusals.
  EXPECT_TRUE(waitUntil(
      [&] {
        return server->log().find("too many signature uploads in progress from this peer") !=
               std::string::npos;
      },
      10s))
      << "no upload was refused: " << out.out << server->log();
  // Junk is no signature: every delta from it fails; unfinished uploads time out.
  EXPECT_TRUE(waitUntil([&] { return listing(store("server")) == before; }, 15s))
      << "before:\n"
      << before << "after:\n"
      << listing(store("server"));
  EXPECT_TRUE(server->running());
  const auto log = server->log();
  EXPECT_NE(log.find("signaturePart.basisId"), std::string::npos) << "hostile ids not refused";
}

// One key, 200 connections, each asking for every chunk and parking 4096 manifest requests for
// made-up ids, never reading: the server holds for that key what it holds for one peer (8
// connections served, requests per key), and another key's fetch meanwhile succeeds.
TEST_F(HostileLoopback, TwoHundredConnectionsOfOneKeyCostTheServerWhatOneKeyMay) {
  auto a = import("server", randomFile(dir() / "image", 4 << 20, 6), "1");
  auto server = serve();
  std::this_thread::sleep_for(1s);
  PeakRss rss(server->pid());
  Daemon flood({hostilePeer().string(), "connections", "--to", endpoint(), "--server-key",
                pub("server").string(), "--key", key("bad").string(), "--artifact", a.id,
                "--connections", "200", "--chunks", "4", "--manifests", "4096", "--hold", "60"},
               dir() / "flood.log");
  ASSERT_TRUE(flood.waitForLog("opened 200", 60s)) << flood.log();
  std::this_thread::sleep_for(10s);  // every request is in; the queues towards it are full
  auto good = fetch(endpoint(), pub("server").string(), a);
  std::this_thread::sleep_for(2s);
  rss.stop();
  const double growthMiB = rss.growthMiB();
  std::cout << "server RSS " << rss.startKiB() / 1024 << " MiB at start, " << growthMiB
            << " MiB more at most with 200 connections of one key" << std::endl;
  EXPECT_EQ(good.exitCode, 0) << good.err;
  EXPECT_LT(growthMiB, 64.0);
  EXPECT_TRUE(server->running());
  EXPECT_TRUE(server->waitForLog("connections_per_key", 1s)) << "no connection was ignored";
}

// Six peers, each with its own key, upload a real signature of a basis the server has never
// seen: each gets its delta computed and every chunk of it served, and the store holds exactly
// what it held before (the deltas lived in scratch, with their uploads, and are gone with them).
TEST_F(HostileLoopback, DeltasFromSixPeersUploadedSignaturesAreServedAndNeverStored) {
  const auto image = randomFile(dir() / "image", 4 << 20, 7);
  auto a = import("server", image, "2");
  writeMadeUpBasis(image, dir() / "basis");
  std::ofstream(dir() / "limits.yaml") << "transfer:\n  limits:\n    upload_timeout: 2s\n";
  std::vector<std::string> extra{"--config", (dir() / "limits.yaml").string()};
  for (int i = 0; i < 6; ++i) {
    const std::string k = "peer" + std::to_string(i);
    checkCommand({transferTool().string(), "keygen", k, "--dir", (dir() / "keys").string()});
    extra.insert(extra.end(), {"--allow", pub(k).string()});
  }
  auto server = serve(extra);
  const std::string before = listing(store("server") / "objects");
  const auto artifactsBefore =
      std::distance(fs::directory_iterator(store("server") / "objects"), fs::directory_iterator());
  std::vector<CommandOutput> outs(6);
  {
    std::vector<std::jthread> peers;
    for (int i = 0; i < 6; ++i)
      peers.emplace_back([&, i] {
        outs[i] = run({hostilePeer().string(), "uploaded-delta", "--to", endpoint(), "--server-key",
                       pub("server").string(), "--key", key("peer" + std::to_string(i)).string(),
                       "--target", a.id, "--basis-file", (dir() / "basis").string()},
                      120s);
      });
  }
  for (const auto& out : outs) {
    EXPECT_EQ(out.exitCode, 0) << out.out << out.err;
    // Served: every chunk of a delta, checked against its manifest.
    EXPECT_NE(out.out.find("delta delta-"), std::string::npos) << out.out;
    const auto chunks = field(out.out, "chunks");
    EXPECT_FALSE(chunks.empty()) << out.out;
    EXPECT_NE(out.out.find("received " + chunks.substr(0, chunks.find(' ')) + " "),
              std::string::npos)
        << out.out;
  }
  std::cout << outs[0].out;
  EXPECT_EQ(listing(store("server") / "objects"), before);
  EXPECT_EQ(
      std::distance(fs::directory_iterator(store("server") / "objects"), fs::directory_iterator()),
      artifactsBefore);
  // Idle for upload_timeout: the deltas go from scratch too.
  auto deltasInScratch = [&] {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(store("server") / "tmp"))
      n += e.path().extension() == ".delta";
    return n;
  };
  EXPECT_TRUE(waitUntil([&] { return deltasInScratch() == 0; }, 15s)) << deltasInScratch();
  EXPECT_TRUE(server->running());
}

// A delta the store's disk cannot hold beside its reserve is refused before a byte of it is
// written, naming the store, the need and what is free, and the server goes on serving. The
// store is a 12 MiB tmpfs holding an 8 MiB image: the peer's signature fits, the delta does not.
TEST_F(HostileLoopback, ADeltaTheStoresDiskCannotHoldIsRefusedBeforeAnythingIsWritten) {
  struct SmallDisk {
    explicit SmallDisk(const fs::path& at) : path(at) {
      fs::create_directories(at);
      checkCommand({"mount", "-t", "tmpfs", "-o", "size=12m", "imgpipe-hostile-store", at});
    }
    ~SmallDisk() { ::umount2(path.c_str(), MNT_DETACH); }
    fs::path path;
  } disk(store("server"));
  const auto image = randomFile(dir() / "image", 8 << 20, 8);
  auto a = import("server", image, "2");
  ASSERT_FALSE(a.id.empty());
  writeMadeUpBasis(image, dir() / "basis");
  checkCommand({transferTool().string(), "keygen", "peer", "--dir", (dir() / "keys").string()});
  auto server = serve({"--allow", pub("peer").string()});
  const std::string before = listing(store("server") / "objects");
  auto out = run({hostilePeer().string(), "uploaded-delta", "--to", endpoint(), "--server-key",
                  pub("server").string(), "--key", key("peer").string(), "--target", a.id,
                  "--basis-file", (dir() / "basis").string()},
                 120s);
  EXPECT_NE(out.exitCode, 0) << out.out << out.err;
  EXPECT_NE(out.out.find("unavailable not enough disk space in " + store("server").string()),
            std::string::npos)
      << out.out << out.err;
  EXPECT_NE(out.out.find("needs 8.0 MiB"), std::string::npos) << out.out;
  EXPECT_EQ(out.out.find("for a basis signature"), std::string::npos) << out.out;
  int deltas = 0;
  for (const auto& e : fs::recursive_directory_iterator(store("server")))
    deltas += e.path().extension() == ".delta";
  EXPECT_EQ(deltas, 0);
  EXPECT_EQ(listing(store("server") / "objects"), before);
  EXPECT_TRUE(server->running());
  // The server goes on serving: a granted fetch of the image itself succeeds.
  EXPECT_EQ(fetch(endpoint(), pub("server").string(), a).exitCode, 0);
}

// The fetch against an upstream whose answers carry identifiers that are not data: it fails
// naming the field, and nothing outside the fetcher's store changes.
TEST_F(HostileLoopback, AHostileUpstreamsIdsFailTheFetchNamingTheFieldAndTouchNothingOutside) {
  const auto image = randomFile(dir() / "image", 3 << 20, 4);
  auto a = import("server", image, "2");
  // An older version at the receiver, so it asks for a delta.
  import("good", randomFile(dir() / "old", 3 << 20, 5), "1");
  const std::vector<std::string> values = {"delta-a-b/../../../victim", "../x",
                                           std::string("aa\0bb", 5), std::string(300, 'a'),
                                           std::string(64, 'F')};
  struct Mode {
    std::string mode;
    std::string field;
  };
  const std::vector<Mode> modes = {{"manifest-id", "manifest.artifactId"},
                                   {"manifest-name", "imageName"},
                                   {"chunk-id", "chunk.artifactId"},
                                   {"delta-id", "deltaReply.ready.artifactId"},
                                   {"delta-basis", "basisId"}};
  for (const auto& m : modes) {
    for (const auto& v : values) {
      SCOPED_TRACE(m.mode + " " + hex(v).substr(0, 40));
      const std::string before = listing(dir(), store("good"));
      port_ = freePort();
      Daemon up({hostilePeer().string(), "upstream", "--listen", endpoint(), "--key",
                 key("server").string(), "--file", image.string(), "--name", "img", "--version",
                 "2", "--mode", m.mode, "--value-hex", hex(v)},
                dir() / "upstream.log");
      ASSERT_TRUE(up.waitForLog("listening", 10s)) << up.log();
      Imported offered{a.id, field(up.log(), "digest")};
      auto out = fetch(endpoint(), pub("server").string(), offered, 30s);
      up.kill9();
      EXPECT_NE(out.exitCode, 0) << out.out;
      EXPECT_NE(out.err.find(m.field), std::string::npos) << out.err;
      fs::remove(dir() / "upstream.log");
      EXPECT_EQ(listing(dir(), store("good")), before);
      // Where `delta-a-b/../../../victim` would have led from <store>/objects, and beside it.
      EXPECT_FALSE(fs::exists(dir().parent_path() / "victim"));
      EXPECT_FALSE(fs::exists(dir() / "victim"));
    }
  }
}

// Over a real shaped link: a granted peer that asks 100,000 times for chunk 0 and never reads
// leaves the server's memory where it was, and another peer's fetch over the same link at the
// rate it gets alone.
TEST_F(TransferNetTest, APeerThatNeverReadsCostsTheServerNoMemoryAndOthersNoRate) {
  if (!fs::exists(hostilePeer())) GTEST_SKIP() << "hostile_peer is not built";
  net_->addHost("build");
  net_->addHost("ctrl");
  LinkOptions lo;
  lo.rate = "40mbit";
  net_->link("build", "ctrl", lo);
  const std::uint64_t size = 48ull << 20;
  auto a = import("build", makeFile("image", size, 11), "img", "1");
  auto server = serve("build", "ctrl", {"ctrl", "ctrl2"});
  ASSERT_EQ(readFile("/proc/" + std::to_string(server->pid()) + "/comm").substr(0, 8), "imgpipe-");

  auto goodput = [&](const FetchResult& r) {
    const double s = std::stod(field(r.out(), "seconds"));
    return static_cast<double>(size) * 8 / s / 1e6;  // Mbit/s over the fetch itself
  };
  auto alone = fetch("ctrl", "build", a);
  ASSERT_EQ(alone.command.exitCode, 0) << alone.tail();
  const double aloneMbit = goodput(alone);
  fs::remove_all(store("ctrl"));

  PeakRss rss(server->pid());
  SubprocessOptions ho;
  ho.argv =
      net_->inHost("ctrl", {hostilePeer().string(), "flood", "--to", endpoint("build", "ctrl"),
                            "--server-key", pub("build").string(), "--key", key("ctrl2").string(),
                            "--artifact", a.id, "--count", "100000", "--hold", "60"});
  ho.captureStdout = true;
  Subprocess flood(std::move(ho));
  std::this_thread::sleep_for(5s);  // the requests are in, the queue towards it is full
  auto busy = fetch("ctrl", "build", a);
  rss.stop();
  ASSERT_EQ(busy.command.exitCode, 0) << busy.tail();
  const double busyMbit = goodput(busy);
  const double growthMiB = rss.growthMiB();
  std::cout << "goodput alone " << aloneMbit << " Mbit/s, beside the hostile peer " << busyMbit
            << " Mbit/s (link 40 Mbit/s); server RSS " << rss.startKiB() / 1024 << " MiB at start, "
            << growthMiB << " MiB more at most" << std::endl;
  EXPECT_LT(growthMiB, 64.0);
  EXPECT_GE(busyMbit, 0.9 * aloneMbit);
  EXPECT_GE(busyMbit, 0.9 * 40 * 0.95) << "below 0.9 of what the link carries (iperf3: ~38)";
  EXPECT_TRUE(server->running());
}
