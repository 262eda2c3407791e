#include "coordinator/coordinator_main.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "common/error.h"
#include "common/log.h"
#include "common/net/curve_keys.h"
#include "common/net/shutdown_signals.h"
#include "common/unique_fd.h"
#include "coordinator/config.h"
#include "coordinator/metrics.h"
#include "coordinator/server.h"

namespace imgpipe::coord {

int coordinatorMain(int argc, char** argv) {
  CLI::App app{"imgpipe coordinator"};
  std::string configPath = "/etc/imgpipe/coordinator.yaml";
  bool checkOnly = false;
  app.add_option("-c,--config", configPath, "configuration file")->capture_default_str();
  app.add_flag("--check-config", checkOnly, "validate the configuration and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // Every agent and operator connection holds a descriptor; a site with hundreds of agents needs
  // more than the usual soft limit of 1024.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  net::ShutdownSignals signals({SIGTERM, SIGINT, SIGHUP, SIGPIPE});

  CoordinatorConfig config;
  net::CurveKeyPair keys;
  std::optional<net::AuthorizedKeysFile> authorized;
  try {
    log::init("coordinator", "info");
    config = parseCoordinatorConfig(YamlReader::fromFile(configPath));
    log::init("coordinator", config.logLevel, config.logFile);
    keys = net::loadSecretKey(config.keyFile);
    authorized.emplace(config.authorizedKeys);
  } catch (const Error& e) {
    std::cerr << "imgpipe-coordinator: configuration error: " << e.what() << "\n";
    return 2;
  }
  if (checkOnly) {
    std::cout << configPath << ": OK (" << authorized->current().all().size()
              << " authorized keys)\n";
    return 0;
  }
  try {
    Store store(config.stateDir);
    zmq::context_t context(1);
    net::Reactor reactor;
    EngineOptions options;
    options.heartbeat = config.heartbeat;
    options.buildGrace = config.buildGrace;
    options.maxAttempts = config.maxAttempts;
    options.retryDelay = config.retryDelay;
    options.topology = config.topology;
    options.definitionCheckTimeout = config.definitionCheckTimeout;
    Server server(config, keys, *authorized, store, options, context, reactor);
    std::unique_ptr<Metrics> metrics;
    if (!config.metricsListen.empty())
      metrics = std::make_unique<Metrics>(config.metricsListen, server, reactor);

    reactor.addFd(signals.fd(), [&] {
      const int signo = signals.drain();
      if (signals.takeHangup()) {
        // The next tick ends the sessions of keys that are gone (Engine::enforceKeys).
        spdlog::info("received SIGHUP; reloading {}", config.authorizedKeys.string());
        authorized->reload();
      }
      if (signo) {
        spdlog::info("received signal {}; stopping", signo);
        reactor.stop();
      }
    });
    reactor.run();
    reactor.removeFd(signals.fd());
    return 0;
  } catch (const Error& e) {
    std::cerr << "imgpipe-coordinator: " << e.what() << "\n";
    spdlog::error("{}", e.what());
    return 1;
  } catch (const zmq::error_t& e) {
    std::cerr << "imgpipe-coordinator: cannot listen on " << config.listen << ": " << e.what()
              << "\n";
    return 1;
  }
}

}  // namespace imgpipe::coord
