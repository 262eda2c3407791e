#include "tests/support/cluster.h"

#include <fstream>

#include "common/file_util.h"
#include "common/net/curve_keys.h"

namespace imgpipe::test {

Cluster::Cluster(std::string address, Launcher launcher)
    : address_(std::move(address)),
      launcher_(std::move(launcher)),
      dir_(std::filesystem::temp_directory_path(), "imgpipe-cluster-"),
      port_(freePort()),
      metricsPort_(freePort()) {
  std::filesystem::create_directories(dir() / "keys");
  std::ofstream(dir() / "authorized_keys") << "# name role key\n";
  addKey("coordinator");
  addKey("ops", "operator");
  std::ofstream(dir() / "cli.yaml")
      << "coordinator: {endpoint: " << coordinatorEndpoint()
      << ", public_key: keys/coordinator.pub}\nkey: keys/ops.key\ntimeout: 5s\n";
}

Cluster::~Cluster() {
  agents_.clear();
  coordinator_.reset();
}

std::string Cluster::addKey(const std::string& name, const std::string& role) {
  std::string pub;
  if (!std::filesystem::exists(dir() / "keys" / (name + ".key"))) {
    auto keys = net::generateKeyPair(name);
    net::writeKeyPair(keys, dir() / "keys");
    pub = keys.publicKey;
  } else {
    pub = net::loadPublicKey(dir() / "keys" / (name + ".pub"));
  }
  if (!role.empty() && !roles_.count(name)) {
    roles_[name] = role;
    std::ofstream(dir() / "authorized_keys", std::ios::app)
        << name << " " << role << " " << pub << "\n";
  }
  return pub;
}

Daemon& Cluster::startCoordinator() {
  std::ofstream(dir() / "coordinator.yaml")
      << "listen: " << coordinatorEndpoint()
      << "\nkey: keys/coordinator.key\nauthorized_keys: authorized_keys\n"
      << "state_dir: coordinator-state\nmetrics_listen: 127.0.0.1:" << metricsPort_ << "\n"
      << coordinatorExtra_ << "\n";
  coordinator_ = std::make_unique<Daemon>(
      launch("coordinator", {(buildDir() / "bin/imgpipe-coordinator").string(), "--config",
                             (dir() / "coordinator.yaml").string()}),
      dir() / "coordinator.log");
  // Ready when it answers an operator request.
  waitUntil([&] { return cli({"agents"}).exitCode == 0 || !coordinator_->running(); },
            std::chrono::seconds(10));
  return *coordinator_;
}

std::string Cluster::commonAgentConfig(const std::string& name) const {
  return "name: " + name + "\nkey: " + (dir() / "keys" / (name + ".key")).string() +
         "\ncoordinator: {endpoint: " + coordinatorEndpoint() +
         ", public_key: " + (dir() / "keys/coordinator.pub").string() +
         "}\nstate_dir: " + (dir() / ("state-" + name)).string() + "\n";
}

std::string Cluster::agentConfigPath(const std::string& name) const {
  return (dir() / (name + ".yaml")).string();
}

Daemon& Cluster::startAgent(const std::string& name,
                            const std::vector<std::string>& argvBeforeConfig,
                            const std::string& configYaml) {
  std::ofstream(agentConfigPath(name)) << configYaml;
  auto argv = argvBeforeConfig;
  argv.push_back("--config");
  argv.push_back(agentConfigPath(name));
  agents_[name] = std::make_unique<Daemon>(launch(name, argv), dir() / (name + ".log"));
  return *agents_[name];
}

Daemon& Cluster::startSimAgent(const std::string& name, const std::string& role,
                               const std::string& extra) {
  addKey(name, role);
  return startAgent(name, {(buildDir() / "bin/imgpipe-sim-agent").string(), role},
                    commonAgentConfig(name) + extra);
}

CommandOutput Cluster::cli(std::vector<std::string> args, bool json) {
  std::vector<std::string> argv{(buildDir() / "bin/imgpipe").string(), "--config",
                                (dir() / "cli.yaml").string()};
  if (json) argv.push_back("--json");
  argv.insert(argv.end(), args.begin(), args.end());
  return run(launch("cli", argv), std::chrono::seconds(600));
}

nlohmann::json Cluster::cliJson(std::vector<std::string> args) {
  auto r = cli(std::move(args));
  if (r.exitCode != 0)
    throw std::runtime_error("imgpipe failed (" + std::to_string(r.exitCode) + "): " + r.err);
  return nlohmann::json::parse(r.out);
}

std::map<std::string, bool> Cluster::agentsOnline() {
  std::map<std::string, bool> out;
  auto r = cli({"agents"});
  if (r.exitCode != 0) return out;
  for (const auto& a : nlohmann::json::parse(r.out))
    out[a["name"]] = a["online"];
  return out;
}

std::string Cluster::jobState(const std::string& job) {
  auto r = cli({"show", job});
  if (r.exitCode != 0) return "";
  return nlohmann::json::parse(r.out)["state"];
}

std::string Cluster::writeDefinition(const std::string& name, const std::string& yaml) {
  auto path = dir() / name;
  std::ofstream(path) << yaml;
  return path.string();
}

std::string Cluster::logs() {
  std::string out = "--- coordinator.log\n" + (coordinator_ ? coordinator_->log() : std::string());
  for (const auto& [name, d] : agents_)
    out += "--- " + name + ".log\n" + d->log();
  return out;
}

}  // namespace imgpipe::test
