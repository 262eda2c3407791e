#include "common/agent/agent_config.h"

namespace imgpipe::agent {

net::HeartbeatPolicy parseHeartbeat(const YamlReader& s, net::HeartbeatPolicy p) {
  if (s.isNull()) return p;
  if (auto v = s.at("interval"); !v.isNull()) p.interval = v.asDuration();
  p.liveness = s.get("liveness", p.liveness);
  if (auto v = s.at("reconnect_initial"); !v.isNull()) p.reconnectInitial = v.asDuration();
  if (auto v = s.at("reconnect_max"); !v.isNull()) p.reconnectMax = v.asDuration();
  s.rejectUnknownKeys();
  if (p.interval.count() <= 0) s.at("interval").fail("must be positive");
  if (p.liveness < 1) s.at("liveness").fail("must be at least 1");
  if (p.reconnectMax < p.reconnectInitial)
    s.at("reconnect_max").fail("must not be shorter than reconnect_initial");
  return p;
}

AgentConfig parseAgentConfig(const YamlReader& doc, Role role) {
  AgentConfig c;
  c.name = doc.required<std::string>("name");
  c.keyFile = doc.require("key").asPath();
  auto coord = doc.require("coordinator");
  c.coordinatorEndpoint = coord.required<std::string>("endpoint");
  auto keyField = coord.require("public_key");
  try {
    const auto text = keyField.as<std::string>();
    c.coordinatorKey = net::isValidZ85Key(text) ? text : net::loadPublicKey(keyField.asPath());
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    keyField.fail(e.what());
  }
  coord.rejectUnknownKeys();
  c.stateDir = doc.getPath("state_dir", c.stateDir);
  c.logLevel = doc.get<std::string>("log_level", c.logLevel);
  c.logFile = doc.has("log_file") ? doc.at("log_file").asPath().string() : "";
  c.capacity = doc.get<unsigned>("capacity", role == Role::build ? 1u : 4u);
  if (c.capacity == 0) doc.at("capacity").fail("must be at least 1");
  c.labels = doc.at("labels").asStringList();
  c.heartbeat = parseHeartbeat(doc.at("heartbeat"));
  if (auto v = doc.at("fence_after"); !v.isNull()) c.fenceAfter = v.asDuration();
  return c;
}

}  // namespace imgpipe::agent
