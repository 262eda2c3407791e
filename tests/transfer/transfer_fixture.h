#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "tests/support/netns.h"

namespace imgpipe::test {

struct Imported {
  std::string id;
  std::string digest;
};

struct FetchResult {
  CommandResult command;
  double seconds = 0;  // wall time of the whole fetch command
  std::string via;     // full | delta | already-here
  std::uint32_t reconnects = 0;
  std::string out() const { return command.stdoutText; }
  std::string tail() const {
    std::string t;
    for (const auto& l : command.tail)
      t += l + "\n";
    return t;
  }
};

// Real imgpipe-transfer processes in real network namespaces: keys, stores and logs in a
// temporary directory, removed (with the namespaces) when the test ends, however it ends.
class TransferNetTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // A file of `size` pseudo-random bytes (incompressible, like a compressed qcow2).
  std::filesystem::path makeFile(const std::string& name, std::uint64_t size, std::uint32_t seed);
  std::filesystem::path store(const std::string& host) const { return dir() / ("store-" + host); }
  std::filesystem::path key(const std::string& host) const {
    return dir() / "keys" / (host + ".key");
  }
  std::filesystem::path pub(const std::string& host) const {
    return dir() / "keys" / (host + ".pub");
  }
  std::filesystem::path dir() const { return work_->path(); }
  std::string endpoint(const std::string& host, const std::string& peer, int port = 7701) const;

  Imported import(const std::string& host, const std::filesystem::path& file,
                  const std::string& name, const std::string& version);
  // `host` serves its store on its address towards `peer`, to the given keys.
  std::unique_ptr<NetDaemon> serve(const std::string& host, const std::string& peer,
                                   const std::vector<std::string>& allow);
  // `host` fetches from `upstream` while serving towards `downstream`.
  std::unique_ptr<NetDaemon> relay(const std::string& host, const std::string& upstream,
                                   const std::string& downstream, const Imported& artifact,
                                   const std::vector<std::string>& allow,
                                   std::vector<std::string> extra = {}, std::string listen = {});
  FetchResult fetch(const std::string& host, const std::string& upstream, const Imported& artifact,
                    std::vector<std::string> extra = {},
                    std::chrono::seconds timeout = std::chrono::seconds(180));
  // Runs the fetch in the background; join with wait().
  std::unique_ptr<Subprocess> startFetch(const std::string& host, const std::string& upstream,
                                         const Imported& artifact,
                                         std::vector<std::string> extra = {});
  std::filesystem::path artifactData(const std::string& host, const Imported& a) const {
    return store(host) / "objects" / a.id / "data";
  }
  static bool sameContent(const std::filesystem::path& a, const std::filesystem::path& b);

  std::unique_ptr<NetTopology> net_;
  std::unique_ptr<TempDir> work_;
};

}  // namespace imgpipe::test
