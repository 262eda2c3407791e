#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace imgpipe::build {

// What a successful build hands to the artifact store. Value type.
struct BuildOutput {
  std::filesystem::path image;  // the compacted qcow2
  std::string manifestJson;     // the build manifest (docs/build-agent.md lists its fields)
  nlohmann::json validation;    // its "validation" section, read when the manifest was
  std::string sha256Hex, sha512Hex;
  std::uint64_t size = 0, virtualSize = 0;
  std::string imageName, imageVersion;
  std::vector<std::string> outputs;    // the kinds the manifest lists digests for
  std::filesystem::path manifestFile;  // the same manifest, on disk next to the image
  std::filesystem::path buildLog;
  bool reused = false;  // an earlier result with the same inputs
};

}  // namespace imgpipe::build
