#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/build/support/build_fixture.h"
#include "tests/support/cluster.h"
#include "tests/support/local_openstack.h"
#include "tests/support/netns.h"

namespace imgpipe::test {

// The whole pipeline across three hosts on one machine:
//
//   [build]  coordinator, CLI, build agent   --link--  [relay] relay agent  --link--  [ctrl]
//            (uplink NATed to Debian's mirror)                                 glance agent +
//            glance-api
//
// Every daemon is the real program in its own network namespace; links are tbf-shaped veths.
// The build starts from the cached cloud-like fixture base (tests/build) and installs packages
// from Debian's mirror. Everything is torn down whatever the outcome.
class PipelineTest : public ::testing::Test {
 protected:
  static constexpr const char* kRate = "60mbit";

  void SetUp() override;
  void TearDown() override;

  // An image definition on the fixture base, with `packages` installed and a marker file that
  // makes each version's bytes differ; `extra` is appended (more top-level keys).
  std::string definition(const std::string& name, const std::string& version,
                         const std::vector<std::string>& packages, const std::string& extra = "");
  std::string submit(const std::string& definitionPath);
  nlohmann::json show(const std::string& job) { return cluster_->cliJson({"show", job}); }
  // Waits for the job to end (done, failed or cancelled); returns its final state.
  std::string waitForEnd(const std::string& job, std::chrono::seconds timeout);
  // A running step's progress: (done, total); (0, 0) when not found.
  std::pair<std::uint64_t, std::uint64_t> stepProgress(const std::string& job,
                                                       const std::string& step);

  // Glance images matching `query` (e.g. "imgpipe_build_id=..."), hidden ones included.
  std::vector<nlohmann::json> glanceImages(const std::string& query);
  void restartAgent(const std::string& name);
  // Mounts, loop devices and processes a build could have left on the build host.
  std::vector<std::string> buildLeftovers() const;

  std::unique_ptr<NetTopology> net_;
  std::unique_ptr<LocalOpenStack> glance_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<build::test::TestArea> area_;
  std::map<std::string, std::string> agentConfigs_;  // name -> config YAML
  std::map<std::string, std::vector<std::string>> agentArgv_;
  std::chrono::steady_clock::time_point lastProgressPrint_{};
};

}  // namespace imgpipe::test
