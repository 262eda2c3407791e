#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/cli/client.h"

namespace imgpipe::cli {

struct GlobalOptions {
  std::string config;          // CLI config file
  std::string coordinator;     // overrides config
  std::string coordinatorKey;  // overrides config
  std::string key;             // overrides config
  std::string timeout = "10s";
  bool json = false;
};

// Connection settings resolved from the config file and the flags.
struct Connection {
  std::string endpoint;
  std::string coordinatorKey;
  net::CurveKeyPair keys;
  std::chrono::milliseconds timeout{10'000};
};
Connection resolveConnection(const GlobalOptions& g);

int cmdKeygen(const std::string& name, const std::string& dir, bool json);
int cmdValidate(const std::string& file, bool json);
// Writes one definition per entry of a Packer-style .images.yaml into `outDir` (never over an
// existing file unless `force`), and says what it mapped and what has no meaning here. `base`:
// a path, an https:// URL (with `baseSha256`) or debootstrap:SUITE.
int cmdImportImagesYaml(const std::string& file, const std::string& base,
                        const std::string& baseSha256, const std::string& outDir, bool force,
                        bool json);
int cmdSubmit(const GlobalOptions& g, const std::string& file,
              const std::vector<std::string>& targets, int priority,
              const std::vector<std::string>& labels, bool wait);
int cmdList(const GlobalOptions& g, const std::vector<std::string>& states, unsigned limit);
int cmdShow(const GlobalOptions& g, const std::string& job);
int cmdWatch(const GlobalOptions& g, const std::string& job);
int cmdEvents(const GlobalOptions& g, const std::string& job, bool follow);
int cmdCancel(const GlobalOptions& g, const std::string& job);
int cmdRetry(const GlobalOptions& g, const std::string& job);
int cmdAgents(const GlobalOptions& g);

}  // namespace imgpipe::cli
