#include "common/agent/agent_main.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "common/agent/agent_session.h"
#include "common/error.h"
#include "common/log.h"
#include "common/net/shutdown_signals.h"
#include "common/unique_fd.h"

namespace imgpipe::agent {

int agentMain(int argc, char** argv, Role role, const RoleSetup& setup) {
  const std::string roleName(toString(role));
  CLI::App app{"imgpipe " + roleName + " agent"};
  std::string configPath = "/etc/imgpipe/agent-" + roleName + ".yaml";
  bool checkOnly = false;
  app.add_option("-c,--config", configPath, "configuration file")->capture_default_str();
  bool probe = false;
  app.add_flag("--check-config", checkOnly, "validate the configuration and exit");
  app.add_flag("--probe", probe,
               "validate the configuration, check that the services this role uses answer "
               "(a glance agent's Glance and Keystone), and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  // Before any thread starts (logging's included), so that none of them takes the signals.
  net::ShutdownSignals signals({SIGTERM, SIGINT, SIGPIPE});

  log::init("agent-" + roleName, "info");
  std::optional<YamlReader> doc;
  AgentConfig common;
  net::CurveKeyPair keys;
  try {
    doc = YamlReader::fromFile(configPath);
    common = parseAgentConfig(*doc, role);
    log::init(common.name, common.logLevel, common.logFile);
    keys = net::loadSecretKey(common.keyFile);
  } catch (const Error& e) {
    std::cerr << "imgpipe-agent-" << roleName << ": configuration error: " << e.what() << "\n";
    return 2;
  }
  try {
    zmq::context_t zmq(1);
    net::Reactor reactor;
    if (probe) checkOnly = true;
    RoleContext ctx{*doc, common, keys, zmq, reactor, checkOnly};
    RoleParts parts;
    try {
      parts = setup(ctx);
      doc->rejectUnknownKeys();
    } catch (const Error& e) {
      std::cerr << "imgpipe-agent-" << roleName << ": configuration error: " << e.what() << "\n";
      return 2;
    }
    if (probe && parts.probe) {
      try {
        std::cout << parts.probe() << "\n";
      } catch (const std::exception& e) {
        std::cerr << "imgpipe-agent-" << roleName << ": " << e.what() << "\n";
        return 1;
      }
    }
    if (checkOnly) {
      std::cout << configPath << ": OK\n";
      return 0;
    }
    std::filesystem::create_directories(common.stateDir);

    SessionOptions options;
    options.role = role;
    options.name = common.name;
    options.capacity = common.capacity;
    options.labels = common.labels;
    options.dataEndpoint = parts.dataEndpoint;
    options.coordinatorEndpoint = common.coordinatorEndpoint;
    options.coordinatorKey = common.coordinatorKey;
    options.keys = keys;
    options.heartbeat = common.heartbeat;
    options.fenceAfter = common.fenceAfter;

    int exitCode = 0;
    {
      AgentSession session(zmq, reactor, options, *parts.runner);
      if (!parts.ignoreRefusals)
        session.onRefused = [&](const std::string&) {
          exitCode = 3;
          reactor.stop();
        };
      reactor.addFd(signals.fd(), [&] {
        if (int signo = signals.drain()) {
          spdlog::info("received signal {}; stopping running tasks", signo);
          reactor.stop();
        }
      });
      session.start();
      reactor.run();
      session.stopAllTasks("agent shutting down");
      // Give the final task events a moment to reach the coordinator.
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (std::chrono::steady_clock::now() < until)
        reactor.runOnce(std::chrono::milliseconds(50));
      reactor.removeFd(signals.fd());
    }
    spdlog::info("stopped");
    return exitCode;
  } catch (const Error& e) {
    std::cerr << "imgpipe-agent-" << roleName << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace imgpipe::agent
