#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "agent-build/config/build_config.h"

namespace imgpipe::build {

// Everything a build child needs, handed to it as JSON on stdin. Value type.
struct JobSpec {
  std::string jobId;
  unsigned attempt = 0;
  std::string agentName;
  std::string definitionText;
  std::string definitionSource;     // its path in the bundle, for messages
  std::filesystem::path bundleDir;  // the files it brought (definition/bundle.h); empty: none
  std::string definitionDigest;     // the bundle's digest
  std::string imageVersion;         // the job's one version, fixed when it was submitted
  BuildConfig config;
  std::filesystem::path outDir;  // empty: <output_dir>/<name>/<version>
  bool keepWorkDir = false;      // keep the work dir even after success
  bool baseOnly = false;         // only resolve the base (fill the base cache) and report it
};

nlohmann::json toJson(const JobSpec& job);
JobSpec jobSpecFromJson(const nlohmann::json& j);

}  // namespace imgpipe::build
