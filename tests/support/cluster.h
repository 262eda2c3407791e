#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "tests/support/process.h"

namespace imgpipe::test {

// A coordinator, agents and an operator CLI on loopback, each a real process, in a temp dir:
// keys, authorized_keys, configs and logs. Everything is killed when the Cluster goes away.
class Cluster {
 public:
  // Wraps the argv of a process before it starts: `who` is "coordinator", "cli" or an agent's
  // name. The end-to-end tests use it to run each in its own network namespace.
  using Launcher = std::function<std::vector<std::string>(const std::string& who,
                                                          std::vector<std::string> argv)>;

  // `address`: where the coordinator listens and is reached (default loopback).
  explicit Cluster(std::string address = "127.0.0.1", Launcher launcher = {});
  ~Cluster();

  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string coordinatorEndpoint() const {
    return "tcp://" + address_ + ":" + std::to_string(port_);
  }
  int metricsPort() const { return metricsPort_; }

  // Writes NAME.key/.pub; with a role, lists the key in authorized_keys.
  std::string addKey(const std::string& name, const std::string& role = "");
  // Extra YAML appended to the coordinator config (topology, grace, ...).
  void setCoordinatorExtra(std::string yaml) { coordinatorExtra_ = std::move(yaml); }
  Daemon& startCoordinator();
  Daemon& coordinator() { return *coordinator_; }
  void killCoordinator() { coordinator_->kill9(); }

  // Starts a simulated-work agent (tests/support/sim_agent.cpp) with its key and config;
  // `extra` is appended to its config. The key is created and authorized if missing.
  Daemon& startSimAgent(const std::string& name, const std::string& role,
                        const std::string& extra = "");
  // Starts any agent binary with a config written from `config`.
  Daemon& startAgent(const std::string& name, const std::vector<std::string>& argvBeforeConfig,
                     const std::string& configYaml);
  Daemon& agent(const std::string& name) { return *agents_.at(name); }
  std::string agentConfigPath(const std::string& name) const;
  std::string commonAgentConfig(const std::string& name) const;

  // Runs the imgpipe CLI as the operator; --json is added when `json` is true.
  CommandOutput cli(std::vector<std::string> args, bool json = true);
  nlohmann::json cliJson(std::vector<std::string> args);
  // Agent name -> online, from `imgpipe agents`.
  std::map<std::string, bool> agentsOnline();
  std::string jobState(const std::string& job);
  std::string writeDefinition(const std::string& name, const std::string& yaml);
  std::string logs();

 private:
  std::vector<std::string> launch(const std::string& who, std::vector<std::string> argv) const {
    return launcher_ ? launcher_(who, std::move(argv)) : argv;
  }

  std::string address_;
  Launcher launcher_;
  TempDir dir_;
  int port_;
  int metricsPort_;
  std::string coordinatorExtra_;
  std::map<std::string, std::string> roles_;
  std::unique_ptr<Daemon> coordinator_;
  std::map<std::string, std::unique_ptr<Daemon>> agents_;
};

}  // namespace imgpipe::test
