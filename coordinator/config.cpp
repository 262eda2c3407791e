#include "coordinator/config.h"

#include "common/agent/agent_config.h"

namespace imgpipe::coord {

CoordinatorConfig parseCoordinatorConfig(const YamlReader& doc) {
  CoordinatorConfig c;
  c.listen = doc.get<std::string>("listen", c.listen);
  c.keyFile = doc.require("key").asPath();
  c.authorizedKeys = doc.getPath("authorized_keys", c.authorizedKeys);
  c.stateDir = doc.getPath("state_dir", c.stateDir);
  c.logLevel = doc.get<std::string>("log_level", c.logLevel);
  c.logFile = doc.has("log_file") ? doc.at("log_file").asPath().string() : "";
  c.heartbeat = agent::parseHeartbeat(doc.at("heartbeat"));
  if (auto v = doc.at("build_grace"); !v.isNull()) c.buildGrace = v.asDuration();
  c.maxAttempts = doc.get<unsigned>("max_attempts", c.maxAttempts);
  if (c.maxAttempts == 0) doc.at("max_attempts").fail("must be at least 1");
  if (auto v = doc.at("retry_delay"); !v.isNull()) c.retryDelay = v.asDuration();
  if (auto v = doc.at("max_frame"); !v.isNull()) c.maxFrame = v.asSize();
  c.metricsListen = doc.get<std::string>("metrics_listen", "");
  if (auto v = doc.at("definition_check_timeout"); !v.isNull()) {
    c.definitionCheckTimeout = v.asDuration();
    if (c.definitionCheckTimeout.count() <= 0) v.fail("must be more than 0");
  }
  c.topology = Topology::parse(doc.at("topology"));
  doc.rejectUnknownKeys();
  return c;
}

}  // namespace imgpipe::coord
