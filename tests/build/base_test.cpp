// Bases: a URL base is downloaded resumably (a dropped connection resumes with a Range request,
// not from zero), verified against its SHA-256 and cached by digest; a wrong digest keeps
// nothing. And a SIGKILLed build leaves no mount, device or process, only a stale work dir that
// the next build removes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build;
using namespace imgpipe::build::test;

namespace {

// Serves one file over HTTP/1.1 with Range support; the first response can be cut off after
// `dropAfter` bytes, like a link that drops.
class TinyHttpServer {
 public:
  TinyHttpServer(fs::path file, std::uint64_t dropAfter)
      : file_(std::move(file)), dropAfter_(dropAfter) {
    sock_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(sock_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(sock_.get(), 8) != 0)
      throwErrno("test http server");
    ::getsockname(sock_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::jthread([this](std::stop_token stop) { serve(stop); });
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard l(mutex_);
    return requests_;
  }

 private:
  void serve(std::stop_token stop) {
    while (!stop.stop_requested()) {
      pollfd p{sock_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      UniqueFd c(::accept4(sock_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      std::uint64_t start = 0;
      auto r = req.find("Range: bytes=");
      if (r != std::string::npos) start = std::stoull(req.substr(r + 13));
      {
        std::lock_guard l(mutex_);
        requests_.push_back(r == std::string::npos ? "GET" : "GET from " + std::to_string(start));
      }
      const std::uint64_t total = fs::file_size(file_);
      std::string head = start > 0 ? "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " +
                                         std::to_string(start) + "-" + std::to_string(total - 1) +
                                         "/" + std::to_string(total) + "\r\n"
                                   : "HTTP/1.1 200 OK\r\n";
      head += "Content-Length: " + std::to_string(total - start) +
              "\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n";
      ::send(c.get(), head.data(), head.size(), MSG_NOSIGNAL);
      std::ifstream in(file_, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(start));
      std::uint64_t sent = 0;
      const bool drop = dropAfter_ > 0 && !dropped_;
      std::vector<char> chunk(1 << 16);
      while (in && !stop.stop_requested()) {
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        auto n = static_cast<std::uint64_t>(in.gcount());
        if (drop && sent + n > dropAfter_) n = dropAfter_ - sent;
        if (n == 0 || ::send(c.get(), chunk.data(), n, MSG_NOSIGNAL) < 0) break;
        sent += n;
        if (drop && sent >= dropAfter_) {
          dropped_ = true;
          break;
        }
      }
    }
  }

  fs::path file_;
  std::uint64_t dropAfter_;
  bool dropped_ = false;
  UniqueFd sock_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::jthread thread_;
};

CommandResult prepareBase(const TestArea& area, const fs::path& def, const fs::path& cache,
                          std::string& out) {
  SubprocessOptions o;
  o.argv = {agentBinary().string(), "prepare-base", def.string(),   "--work-dir",
            area.work().string(),   "--cache-dir",  cache.string(), "--json"};
  o.onLine = [&](std::string_view l) { out += std::string(l) + "\n"; };
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(10);
  return runCommand(o);
}

}  // namespace

TEST(BuildBase, UrlBaseResumesAfterADropAndIsCachedByDigest) {
  const auto& base = fixtureBase();
  TestArea area("urlbase");
  const fs::path cache = area.root() / "own-cache";  // not the shared one: this must download
  const std::uint64_t dropAt = fs::file_size(base.file) / 3;
  TinyHttpServer server(base.file, dropAt);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/noble-like.img";
  auto def = area.writeDefinition(
      "url.yaml", "name: url-base\nbase:\n  url: " + url + "\n  sha256: " + base.sha256 + "\n");

  std::string log;
  auto r = prepareBase(area, def, cache, log);
  ASSERT_EQ(r.exitCode, 0) << log;
  auto j = nlohmann::json::parse(r.stdoutText.substr(r.stdoutText.find('{')));
  EXPECT_EQ(j["sha256"], base.sha256);
  EXPECT_EQ(j["base"], (cache / "bases" / ("url-" + base.sha256 + ".img")).string());
  EXPECT_EQ(toHex(hashFile(j["base"].get<std::string>()).sha256), base.sha256);
  EXPECT_EQ(server.requests(),
            (std::vector<std::string>{"GET", "GET from " + std::to_string(dropAt)}))
      << log;
  EXPECT_NE(log.find("resuming " + url + " at " + std::to_string(dropAt) + " bytes"),
            std::string::npos)
      << log;

  // Cached by digest: no second download.
  log.clear();
  r = prepareBase(area, def, cache, log);
  ASSERT_EQ(r.exitCode, 0) << log;
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_NE(log.find("(from the cache)"), std::string::npos) << log;

  // A wrong digest: refused, nothing kept.
  const std::string wrong(64, 'b');
  auto bad = area.writeDefinition(
      "bad.yaml", "name: url-base\nbase:\n  url: " + url + "\n  sha256: " + wrong + "\n");
  log.clear();
  r = prepareBase(area, bad, cache, log);
  EXPECT_EQ(r.exitCode, 1) << log;
  EXPECT_NE(log.find("checksum mismatch for " + url + ": expected sha256 " + wrong + ", got " +
                     base.sha256),
            std::string::npos)
      << log;
  EXPECT_FALSE(fs::exists(cache / "bases" / ("url-" + wrong + ".img")));
  EXPECT_FALSE(fs::exists(cache / "bases" / ("url-" + wrong + ".img.partial")));
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
}

TEST(BuildBase, SigkillOfTheBuildingProcessLeavesNoMountDeviceOrProcess) {
  const auto& base = fixtureBase();
  TestArea area("sigkill");
  auto def = area.writeDefinition(
      "kill.yaml",
      "name: imgpipe-test-kill\nbase:\n  path: " + base.file.string() +
          "\npackages: {install: [tree]}\nvalidation: {require_qemu_guest_agent: false}\n");
  auto config = area.writeConfig(area.config());
  std::atomic<bool> inPackages = false;
  SubprocessOptions o;
  o.argv = {agentBinary().string(), "build",      def.string(),         "--config",
            config.string(),        "--work-dir", area.work().string(), "--out",
            area.out().string()};
  o.onLine = [&](std::string_view l) {
    if (l.find("apt-get update") != std::string_view::npos) inPackages = true;
  };
  Subprocess cli(o);
  std::jthread killer([&](std::stop_token stop) {
    for (int i = 0; i < 1200 && !stop.stop_requested() && !inPackages; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ::kill(cli.pid(), SIGKILL);  // the agent process itself dies, no chance to clean up
  });
  auto r = cli.wait();
  killer.join();
  ASSERT_TRUE(inPackages.load());
  EXPECT_EQ(r.exitCode, 128 + SIGKILL);
  // The build child follows (PDEATHSIG), its PID namespace and mount namespace go with it, and
  // the autoclear loop device detaches: give the kernel a moment.
  std::vector<std::string> left;
  for (int i = 0; i < 100; ++i) {
    left = leftoversUnder(area.root());
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& l : left)
    ADD_FAILURE() << "left behind: " << l;
  // Only the work dir stays (its lock died with the build); the next build removes it.
  EXPECT_FALSE(fs::is_empty(area.work()));
  std::string log;
  auto again = area.writeDefinition(
      "again.yaml",
      "name: imgpipe-test-after-kill\nbase:\n  path: " + base.file.string() +
          "\nvalidation: {require_qemu_guest_agent: false}\ndisk: {compression: zstd}\n");
  SubprocessOptions o2;
  o2.argv = {agentBinary().string(),
             "build",
             again.string(),
             "--config",
             config.string(),
             "--work-dir",
             area.work().string(),
             "--out",
             (area.out() / "again").string()};
  o2.onLine = [&](std::string_view l) { log += std::string(l) + "\n"; };
  EXPECT_EQ(runCommand(o2).exitCode, 0) << log;
  EXPECT_TRUE(fs::is_empty(area.work())) << "stale work dir not removed";
}

// debootstrap's first stage runs as host root and reads its keyring and a file: mirror itself:
// a definition may name only files the operator put beneath base_dirs, never a host path.
TEST(BuildBase, DebootstrapKeyringAndFileMirrorAreReadOnlyFromBeneathBaseDirs) {
  TestArea area("debootstrap-paths");              // its root is the config's base dir
  const fs::path mirror = area.root() / "mirror";  // empty: debootstrap finds no Release in it
  fs::create_directories(mirror);
  fs::copy_file("/usr/share/keyrings/debian-archive-keyring.gpg", area.root() / "keyring.gpg");
  const std::string before = toHex(hashFile("/etc/shadow").sha256);

  auto run = [&](const std::string& keyring, const std::string& mirrorUrl) {
    auto def = area.writeDefinition(
        "d.yaml", "name: d\nbase:\n  debootstrap:\n    suite: bookworm\n    mirror: \"" +
                      mirrorUrl + "\"\n    keyring: " + keyring + "\n");
    return runAgent(area, "prepare-base", def, area.out(), std::chrono::minutes(5));
  };
  auto r = run("/etc/shadow", "file://" + mirror.string());
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("base.debootstrap.keyring '/etc/shadow' is not beneath the build agent's "
                       "base_dirs ("),
            std::string::npos)
      << r.log;

  r = run((area.root() / "keyring.gpg").string(), "file:///etc");
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("base.debootstrap.mirror '///etc' is not beneath the build agent's "
                       "base_dirs"),
            std::string::npos)
      << r.log;

  // Both beneath base_dirs (the keyring by a relative path): handed to debootstrap, which finds
  // no Release file in the empty mirror.
  r = run("keyring.gpg", "file://" + mirror.string());
  EXPECT_NE(r.exitCode, 0);
  EXPECT_EQ(r.log.find("is not beneath the build agent's base_dirs"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("dists/bookworm/Release"), std::string::npos) << r.log;

  // A '..' is refused where the definition is read, before any agent opens anything.
  r = run("../../etc/shadow", "file://" + mirror.string());
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.log.find("base.debootstrap.keyring: must not contain '..'"), std::string::npos)
      << r.log;
  r = run("keyring.gpg", "file://" + mirror.string() + "/../../etc");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.log.find("base.debootstrap.mirror: must not contain '..'"), std::string::npos)
      << r.log;

  EXPECT_EQ(toHex(hashFile("/etc/shadow").sha256), before);
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
}
