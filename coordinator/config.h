#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "common/net/liveness.h"
#include "coordinator/engine.h"
#include "coordinator/topology.h"

namespace imgpipe::coord {

// The coordinator's config file (YAML). Every key with its default:
//
//   listen: tcp://0.0.0.0:7700
//   key: /etc/imgpipe/keys/coordinator.key       # required; mode 0600
//   authorized_keys: /etc/imgpipe/authorized_keys
//   state_dir: /var/lib/imgpipe/coordinator      # SQLite database lives here
//   log_level: info
//   log_file: ""
//   heartbeat: {interval: 1s, liveness: 3}
//   build_grace: 60s        # a lost build agent's job waits this long before it is re-queued
//   max_attempts: 3         # a step that fails with a retryable error runs at most this often
//   retry_delay: 5s         # first delay before such a retry (doubles)
//   max_frame: 4M           # control messages larger than this are dropped
//   metrics_listen: ""      # e.g. 127.0.0.1:9477: Prometheus text endpoint
//   definition_check_timeout: 5s  # a submit whose definition takes longer to check is refused
//   topology: {...}         # see topology.h
struct CoordinatorConfig {
  std::string listen = "tcp://0.0.0.0:7700";
  std::filesystem::path keyFile;
  std::filesystem::path authorizedKeys = "/etc/imgpipe/authorized_keys";
  std::filesystem::path stateDir = "/var/lib/imgpipe/coordinator";
  std::string logLevel = "info";
  std::string logFile;
  net::HeartbeatPolicy heartbeat;
  std::chrono::milliseconds buildGrace{60'000};
  unsigned maxAttempts = 3;
  std::chrono::milliseconds retryDelay{5'000};
  std::size_t maxFrame = 4 << 20;
  std::string metricsListen;
  // Below the imgpipe CLI's --timeout (10 s by default), or the CLI gives up before it is told.
  std::chrono::milliseconds definitionCheckTimeout = kDefinitionCheckTimeout;
  Topology topology;
};

CoordinatorConfig parseCoordinatorConfig(const YamlReader& doc);

}  // namespace imgpipe::coord
