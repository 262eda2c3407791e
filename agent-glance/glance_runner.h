#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "agent-glance/glance_config.h"
#include "common/agent/task_runner.h"
#include "definition/outputs.h"

namespace imgpipe::glance {

// A delivered artifact on this controller (in the transfer plane's artifact store): its file,
// the build manifest it carries (whose "glance" section is what gets registered) and the digest
// of the transfer manifest it was verified against.
struct LocatedArtifact {
  std::filesystem::path file;
  std::string buildManifest;
  std::string manifestDigest;
  std::filesystem::path scratchDir;  // the store's, for a raw expanded from the artifact
  definition::OutputKind kind = definition::OutputKind::qcow2;  // the output the file is
};
using ArtifactLocator = std::function<LocatedArtifact(const std::string& artifactId)>;

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
