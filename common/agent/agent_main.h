#pragma once

#include <functional>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "common/agent/agent_config.h"
#include "common/agent/task_runner.h"
#include "common/net/reactor.h"
#include "common/role.h"
#include "common/yaml_reader.h"

namespace imgpipe::agent {

// What a role contributes to an agent process.
struct RoleParts {
  std::unique_ptr<TaskRunner> runner;
  std::string dataEndpoint;  // advertised artifact server endpoint, if the role serves any
  // Extra resources that must live as long as the process (servers bound on the reactor...).
  std::shared_ptr<void> keepAlive;
  // --probe: checks that what this role talks to besides the coordinator answers (a glance
  // agent's Glance and Keystone) and says what it found; throws naming what does not answer.
  std::function<std::string()> probe;
  // A refusal by the coordinator ends the process (exit code 3) unless this is set: only the
  // tests' hostile agents, which must go on talking the way an attacker's would, set it.
  bool ignoreRefusals = false;
};

struct RoleContext {
  const YamlReader& config;  // the whole file; read your role's section, nothing else
  const AgentConfig& common;
  const net::CurveKeyPair& keys;
  zmq::context_t& zmq;
  net::Reactor& reactor;
  // --check-config: read and validate everything, but bind no port and start nothing.
  bool checkOnly = false;
};

using RoleSetup = std::function<RoleParts(RoleContext&)>;

// The whole main() of an agent daemon: `--config FILE` (and `--check-config`, `--probe`), strict
// config parsing (unknown keys are errors), secret key checks, logging, the coordinator session,
// and orderly shutdown on SIGTERM/SIGINT: running tasks are stopped and unwind their resources.
// Exit codes: 0 stopped by a signal, 1 runtime failure, 2 usage or configuration error,
// 3 refused by the coordinator.
int agentMain(int argc, char** argv, Role role, const RoleSetup& setup);

}  // namespace imgpipe::agent
