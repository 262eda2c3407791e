#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "definition/outputs.h"

namespace imgpipe::build {

// A file of a finished build that travels as an artifact of its own. Value type.
struct OutputFile {
  definition::OutputKind kind = definition::OutputKind::qcow2;
  std::filesystem::path file;
  std::string sha256Hex;  // as the build manifest has it: what the stored artifact must be
};

// What a successful build hands to the artifact store. Value type.
struct BuildOutput {
  std::filesystem::path image;  // the compacted qcow2
  std::string manifestJson;     // the build manifest (docs/build-agent.md lists its fields)
  nlohmann::json validation;    // its "validation" section, read when the manifest was
  std::string sha256Hex, sha512Hex;
  std::uint64_t size = 0, virtualSize = 0;
  std::string imageName, imageVersion;
  std::vector<std::string> outputs;  // the kinds the manifest lists digests for
  // The artifacts: the qcow2 first, then every output the manifest names a file of (the iso).
  std::vector<OutputFile> files;
  std::filesystem::path manifestFile;  // the same manifest, on disk next to the image
  std::filesystem::path buildLog;
  bool reused = false;  // an earlier result with the same inputs
};

}  // namespace imgpipe::build
