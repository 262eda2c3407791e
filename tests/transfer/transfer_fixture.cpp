#include "tests/transfer/transfer_fixture.h"

#include <fstream>

#include "common/file_util.h"

namespace imgpipe::test {
namespace fs = std::filesystem;

void TransferNetTest::SetUp() {
  std::string why;
  if (!NetTopology::available(&why)) GTEST_SKIP() << why;
  if (!fs::exists(transferTool())) GTEST_SKIP() << transferTool() << " is not built";
  work_ = std::make_unique<TempDir>(fs::temp_directory_path(), "imgpipe-transfer-test-");
  net_ = std::make_unique<NetTopology>();
  for (const char* host : {"build", "relay", "ctrl", "ctrl2"})
    checkCommand({transferTool().string(), "keygen", host, "--dir", (dir() / "keys").string()});
}

fs::path TransferNetTest::makeFile(const std::string& name, std::uint64_t size,
                                   std::uint32_t seed) {
  const fs::path path = dir() / name;
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> block(1 << 17);
  std::ofstream out(path, std::ios::binary);
  for (std::uint64_t written = 0; written < size;) {
    for (auto& w : block)
      w = rng();
    const auto n = std::min<std::uint64_t>(size - written, block.size() * 8);
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    written += n;
  }
  return path;
}

std::string TransferNetTest::endpoint(const std::string& host, const std::string& peer,
                                      int port) const {
  return "tcp://" + net_->address(host, peer) + ":" + std::to_string(port);
}

Imported TransferNetTest::import(const std::string& host, const fs::path& file,
                                 const std::string& name, const std::string& version) {
  SubprocessOptions o;
  o.argv = {transferTool().string(),
            "import",
            file.string(),
            "--store",
            store(host).string(),
            "--name",
            name,
            "--version",
            version};
  o.captureStdout = true;
  const std::string out = checkCommand(o);
  Imported a;
  auto field = [&](const std::string& key) {
    auto p = out.find(key + " ");
    return out.substr(p + key.size() + 1, out.find('\n', p) - p - key.size() - 1);
  };
  a.id = field("artifact");
  a.digest = field("manifest");
  return a;
}

std::unique_ptr<NetDaemon> TransferNetTest::serve(const std::string& host, const std::string& peer,
                                                  const std::vector<std::string>& allow) {
  std::vector<std::string> argv{
      transferTool().string(), "serve", "--store",         store(host).string(), "--listen",
      endpoint(host, peer),    "--key", key(host).string()};
  for (const auto& k : allow) {
    argv.push_back("--allow");
    argv.push_back(pub(k).string());
  }
  auto d = std::make_unique<NetDaemon>(*net_, host, argv, dir() / (host + "-serve.log"));
  EXPECT_TRUE(d->waitForLog("listening", std::chrono::seconds(10))) << d->log();
  return d;
}

std::unique_ptr<NetDaemon> TransferNetTest::relay(const std::string& host,
                                                  const std::string& upstream,
                                                  const std::string& downstream, const Imported& a,
                                                  const std::vector<std::string>& allow,
                                                  std::vector<std::string> extra,
                                                  std::string listen) {
  std::vector<std::string> argv{transferTool().string(),
                                "relay",
                                "--store",
                                store(host).string(),
                                "--listen",
                                listen.empty() ? endpoint(host, downstream) : listen,
                                "--key",
                                key(host).string(),
                                "--from",
                                endpoint(upstream, host),
                                "--server-key",
                                pub(upstream).string(),
                                "--artifact",
                                a.id,
                                "--manifest-digest",
                                a.digest};
  for (const auto& k : allow) {
    argv.push_back("--allow");
    argv.push_back(pub(k).string());
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto d = std::make_unique<NetDaemon>(*net_, host, argv, dir() / (host + "-relay.log"));
  EXPECT_TRUE(d->waitForLog("listening", std::chrono::seconds(10))) << d->log();
  return d;
}

namespace {
std::vector<std::string> fetchArgv(const TransferNetTest*, const fs::path& tool,
                                   const fs::path& store, const std::string& from,
                                   const fs::path& serverKey, const fs::path& key,
                                   const Imported& a, std::vector<std::string> extra) {
  std::vector<std::string> argv{
      tool.string(), "fetch",        "--store",           store.string(), "--from",
      from,          "--server-key", serverKey.string(),  "--key",        key.string(),
      "--artifact",  a.id,           "--manifest-digest", a.digest};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}
}  // namespace

std::unique_ptr<Subprocess> TransferNetTest::startFetch(const std::string& host,
                                                        const std::string& upstream,
                                                        const Imported& a,
                                                        std::vector<std::string> extra) {
  SubprocessOptions o;
  o.argv = net_->inHost(host, fetchArgv(this, transferTool(), store(host), endpoint(upstream, host),
                                        pub(upstream), key(host), a, std::move(extra)));
  o.captureStdout = true;
  o.tailLines = 200;
  return std::make_unique<Subprocess>(std::move(o));
}

FetchResult TransferNetTest::fetch(const std::string& host, const std::string& upstream,
                                   const Imported& a, std::vector<std::string> extra,
                                   std::chrono::seconds timeout) {
  SubprocessOptions o;
  o.argv = net_->inHost(host, fetchArgv(this, transferTool(), store(host), endpoint(upstream, host),
                                        pub(upstream), key(host), a, std::move(extra)));
  o.captureStdout = true;
  o.tailLines = 200;
  o.timeout = timeout;
  const auto t0 = std::chrono::steady_clock::now();
  FetchResult r;
  r.command = runCommand(o);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& out = r.command.stdoutText;
  if (auto p = out.find("via "); p != std::string::npos)
    r.via = out.substr(p + 4, out.find('\n', p) - p - 4);
  if (auto p = out.find("reconnects "); p != std::string::npos)
    r.reconnects = static_cast<std::uint32_t>(std::stoul(out.substr(p + 11)));
  return r;
}

bool TransferNetTest::sameContent(const fs::path& a, const fs::path& b) {
  SubprocessOptions o;
  o.argv = {"cmp", "-s", a.string(), b.string()};
  return runCommand(o).exitCode == 0;
}

}  // namespace imgpipe::test
