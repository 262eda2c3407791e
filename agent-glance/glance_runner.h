#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "agent-glance/glance_config.h"
#include "common/agent/task_runner.h"

namespace imgpipe::glance {

// Where a delivered artifact lies on this controller: the transfer plane's artifact store.
using ArtifactLocator = std::function<std::filesystem::path(const std::string& artifactId)>;

// The glance agent's TaskRunner: runs RegisterSpec tasks through the Registrar and reports
// progress ("registering (retrying, attempt n)"), log lines and the Glance image id.
class GlanceRunner : public agent::TaskRunner {
 public:
  GlanceRunner(GlanceConfig config, ArtifactLocator locateArtifact);
  // For tests: an auth provider of their own (shared with the test's own Glance client).
  GlanceRunner(GlanceConfig config, ArtifactLocator locateArtifact,
               std::shared_ptr<AuthProvider> auth);

  void run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
           std::stop_token stop) override;

 private:
  GlanceConfig config_;
  ArtifactLocator locateArtifact_;
  std::shared_ptr<AuthProvider> auth_;  // one Keystone token for all tasks
};

}  // namespace imgpipe::glance
