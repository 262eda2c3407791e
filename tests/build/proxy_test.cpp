// A build agent whose only way out is a real caching proxy (Debian's squid): the agent runs in a
// network namespace joined only to the proxy's namespace, which alone reaches Debian's mirror
// and this machine. The base download, apt in the image, a `url:` file and a script's
// environment all go through `build.proxy`; the proxy's log shows each request; the finished
// image holds no proxy setting (only the definition's `mirrors.apt.proxy` would write one).
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "tests/build/support/build_fixture.h"
#include "tests/support/netns.h"

using namespace imgpipe;
using namespace imgpipe::build::test;
using imgpipe::test::NetDaemon;
using imgpipe::test::NetTopology;

namespace {

constexpr int kProxyPort = 3128;

// squid in the proxy's namespace, listening on its link to the agent only, logging every request.
// It drops to the `proxy` user, so its directory is that user's.
class Squid {
 public:
  Squid(const NetTopology& net, const std::string& listen, const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_);
    const passwd* pw = ::getpwnam("proxy");
    if (!pw) throw Error("no 'proxy' user: is squid installed (scripts/install-deps.sh --test)?");
    const std::string conf = "http_port " + listen + ":" + std::to_string(kProxyPort) +
                             "\n"
                             "http_access allow all\n"
                             "visible_hostname imgpipe-test-proxy\n"
                             "cache_effective_user proxy\n"
                             "access_log stdio:" +
                             (dir_ / "access.log").string() +
                             "\n"
                             "cache_log " +
                             (dir_ / "cache.log").string() +
                             "\n"
                             "pid_filename " +
                             (dir_ / "squid.pid").string() +
                             "\n"
                             "coredump_dir " +
                             dir_.string() +
                             "\n"
                             "shutdown_lifetime 1 seconds\n";
    writeFileAtomic(dir_ / "squid.conf", conf);
    if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throwErrno("chown " + dir_.string());
    daemon_ = std::make_unique<NetDaemon>(
        net, "proxy",
        std::vector<std::string>{"squid", "-N", "-d", "1", "-f", (dir_ / "squid.conf").string()},
        dir_.parent_path() / "squid.stderr");
    if (!daemon_->waitForLog("Accepting HTTP Socket connections", std::chrono::seconds(30)))
      throw Error("squid did not start: " + daemon_->log());
  }
  // squid buffers its access log: stopping it writes everything out.
  std::string stopAndReadLog() {
    daemon_->stop();
    return readFile(dir_ / "access.log");
  }

 private:
  fs::path dir_;
  std::unique_ptr<NetDaemon> daemon_;
};

// Every regular file under `dir` whose content mentions `needle`.
std::vector<std::string> filesMentioning(const fs::path& dir, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it =
           fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec) || it->is_symlink(ec) || it->file_size(ec) > (1u << 20)) continue;
    if (readFile(it->path()).find(needle) != std::string::npos)
      found.push_back(it->path().string());
  }
  return found;
}

}  // namespace

TEST(BuildBehindProxy, EverythingTheBuildFetchesGoesThroughTheProxyAndNothingStaysInTheImage) {
  std::string why;
  if (!NetTopology::available(&why)) GTEST_SKIP() << why;
  const auto& base = fixtureBase();  // made beforehand with this machine's own network
  TestArea area("proxy");

  NetTopology net;
  net.addHost("agent");
  net.addHost("proxy");
  net.link("agent", "proxy", {.rate = ""});
  net.uplink("proxy");
  const std::string proxyAddr = net.address("proxy", "agent");
  const std::string proxyUrl = "http://" + proxyAddr + ":" + std::to_string(kProxyPort);

  // This machine serves the base and a file, on the proxy's uplink: the agent cannot reach that
  // address except through the proxy.
  const fs::path served = area.root() / "served";
  fs::create_directories(served);
  fs::create_symlink(base.file, served / "base.qcow2");
  const std::string note = "fetched through the proxy\n";
  writeFileAtomic(served / "note.txt", note);
  const int port = imgpipe::test::freePort();
  const std::string host = net.uplinkGateway("proxy");
  imgpipe::test::Daemon http({"python3", "-m", "http.server", std::to_string(port), "--bind", host,
                              "--directory", served.string()},
                             area.root() / "http.log");
  ASSERT_TRUE(imgpipe::test::waitUntil(
      [&] {
        return runCommand(SubprocessOptions{.argv = {"curl", "-sf", "-o", "/dev/null",
                                                     "http://" + host + ":" + std::to_string(port) +
                                                         "/note.txt"}})
                   .exitCode == 0;
      },
      std::chrono::seconds(10)))
      << http.log();
  const std::string origin = "http://" + host + ":" + std::to_string(port);

  TempDir squidRoot("/var/tmp", "imgpipe-squid-");
  fs::permissions(squidRoot.path(),
                  fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  Squid squid(net, proxyAddr, squidRoot.path() / "squid");

  // The agent's namespace has no other way out: the origin is unreachable without the proxy.
  SubprocessOptions direct{
      .argv = net.inHost("agent", {"curl", "-sS", "--max-time", "5", origin + "/note.txt"})};
  direct.captureStdout = true;
  EXPECT_NE(runCommand(direct).exitCode, 0) << "the agent's namespace reaches past the proxy";

  // Its own cache: nothing of the machine-wide base or apt cache, so everything is fetched.
  const fs::path cache = area.root() / "own-cache";
  const auto config = area.root() / "agent-build.yaml";
  writeFileAtomic(config, "build:\n  work_dir: " + area.work().string() + "\n  cache_dir: " +
                              cache.string() + "\n  output_dir: " + area.out().string() +
                              "\n  min_free_space: 536870912\n  proxy: {http: " + proxyUrl +
                              "}\n  base_dirs: [" + area.root().string() + "]\n");
  const auto def = area.writeDefinition(
      "behind-proxy.yaml",
      "name: imgpipe-test-proxy\nbase:\n  url: " + origin +
          "/base.qcow2\n  sha256: " + base.sha256 +
          "\ndisk: {compression: zstd}\n"
          "packages: {install: [tree]}\n"
          "files:\n  - path: /etc/imgpipe-note\n    url: " +
          origin + "/note.txt\n    sha256: " + toHex(sha256(note)) +
          "\nscripts:\n"
          "  - name: proxy-in-environment\n"
          "    run: |\n"
          "      #!/bin/sh\n"
          "      test -n \"$http_proxy\" || { echo 'no http_proxy for scripts' >&2; exit 1; }\n"
          "validation: {require_qemu_guest_agent: false}\n");

  SubprocessOptions o;
  o.argv = net.inHost("agent",
                      {agentBinary().string(), "build", def.string(), "--config", config.string(),
                       "--work-dir", area.work().string(), "--out", area.out().string(), "--json"});
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(30);
  std::string log;
  o.onLine = [&](std::string_view l) {
    log += std::string(l) + "\n";
    std::fprintf(stderr, "[proxy] %.*s\n", static_cast<int>(l.size()), l.data());
  };
  const auto r = runCommand(o);
  const std::string access = squid.stopAndReadLog();
  ASSERT_EQ(r.exitCode, 0) << log << "\nproxy log:\n" << access;

  // The proxy saw the base download, the url: file, and apt's indexes and package.
  EXPECT_NE(access.find("GET " + origin + "/base.qcow2"), std::string::npos) << access;
  EXPECT_NE(access.find("GET " + origin + "/note.txt"), std::string::npos) << access;
  EXPECT_NE(access.find("http://deb.debian.org/debian/dists/bookworm"), std::string::npos)
      << access;
  EXPECT_NE(access.find("/pool/main/t/tree/tree_"), std::string::npos) << access;

  fs::path image;
  for (const auto& e : fs::recursive_directory_iterator(area.out()))
    if (e.path().extension() == ".qcow2") image = e.path();
  ASSERT_FALSE(image.empty()) << "no image in " << area.out();
  MountedImage img(image, area.root() / "inspect");
  EXPECT_TRUE(fs::exists(img.root() / "usr/bin/tree"));
  EXPECT_EQ(readFile(img.root() / "etc/imgpipe-note"), note);
  // No trace of the build's proxy in the image's configuration.
  EXPECT_EQ(filesMentioning(img.root() / "etc", proxyAddr), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(img.root() / "etc/apt/apt.conf.d/90imgpipe-proxy"));
}
