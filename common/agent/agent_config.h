#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/net/curve_keys.h"
#include "common/net/liveness.h"
#include "common/role.h"
#include "common/yaml_reader.h"

namespace imgpipe::agent {

// The part of every agent's config file that is the same for all roles:
//
//   name: build-1                      # as listed in the coordinator's authorized_keys
//   key: /etc/imgpipe/keys/build-1.key # this agent's secret key (mode 0600)
//   coordinator:
//     endpoint: tcp://10.0.0.1:7700
//     public_key: /etc/imgpipe/keys/coordinator.pub
//   state_dir: /var/lib/imgpipe        # default
//   log_level: info                    # default
//   capacity: 1                        # concurrent tasks; default 1 (build), 4 (relay, glance)
//   labels: []
//   heartbeat: {interval: 1s, liveness: 3, reconnect_initial: 1s, reconnect_max: 32s}
//   fence_after: 120s                  # abandon reassignable tasks after this long alone
//
// Role sections (build:, transfer:, glance:) are read by the role's own code.
struct AgentConfig {
  std::string name;
  std::filesystem::path keyFile;
  std::string coordinatorEndpoint;
  std::string coordinatorKey;  // resolved Z85 key
  std::filesystem::path stateDir = "/var/lib/imgpipe";
  std::string logLevel = "info";
  std::string logFile;
  unsigned capacity = 1;
  std::vector<std::string> labels;
  net::HeartbeatPolicy heartbeat;
  std::chrono::milliseconds fenceAfter{120'000};
};

AgentConfig parseAgentConfig(const YamlReader& doc, Role role);
net::HeartbeatPolicy parseHeartbeat(const YamlReader& section, net::HeartbeatPolicy defaults = {});

}  // namespace imgpipe::agent
