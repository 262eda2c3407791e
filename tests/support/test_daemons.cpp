#include "tests/support/test_daemons.h"

#include "common/error.h"
#include "common/file_util.h"

namespace imgpipe::test {

namespace fs = std::filesystem;

Tinyproxy::Tinyproxy(const fs::path& dir) : port_(freePort()) {
  fs::create_directories(dir);
  log_ = dir / "tinyproxy.log";
  const auto conf = dir / "tinyproxy.conf";
  writeFileAtomic(conf, "Port " + std::to_string(port_) +
                            "\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\nLogLevel Info\n"
                            "LogFile \"" +
                            log_.string() + "\"\n");
  daemon_ = std::make_unique<Daemon>(
      std::vector<std::string>{"tinyproxy", "-d", "-c", conf.string()}, dir / "stderr.log");
  if (!waitUntil(
          [&] {
            return fs::exists(log_) &&
                   readFile(log_).find("Accepting connections") != std::string::npos;
          },
          std::chrono::seconds(10)))
    throw Error("tinyproxy did not start: " + daemon_->log());
}

std::string Tinyproxy::log() const {
  return fs::exists(log_) ? readFile(log_) : "";
}

Registry::Registry(const fs::path& dir) : port_(freePort()) {
  fs::create_directories(dir / "storage");
  const auto conf = dir / "config.yml";
  writeFileAtomic(conf,
                  "version: 0.1\nlog: {level: info}\nstorage:\n  filesystem:\n"
                  "    rootdirectory: " +
                      (dir / "storage").string() +
                      "\nhttp:\n  addr: 0.0.0.0:" + std::to_string(port_) + "\n");
  daemon_ = std::make_unique<Daemon>(
      std::vector<std::string>{"docker-registry", "serve", conf.string()}, dir / "registry.log");
  if (!daemon_->waitForLog("listening on", std::chrono::seconds(15)))
    throw Error("docker-registry did not start: " + daemon_->log());
}

}  // namespace imgpipe::test
