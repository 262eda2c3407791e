// imgpipe-agent-relay: an agent whose role is the transfer plane. It serves the artifacts in its
// store to the next hop and fetches what the coordinator tells it to from the previous one.
#include "common/agent/agent_main.h"
#include "transfer/fetch_runner.h"
#include "transfer/transfer_config.h"

using namespace imgpipe;

int main(int argc, char** argv) {
  return agent::agentMain(argc, argv, Role::relay, [](agent::RoleContext& ctx) {
    auto config = transfer::parseTransferConfig(ctx.config.at("transfer"), ctx.common.stateDir,
                                                /*serveByDefault=*/true);
    auto plane = std::make_shared<transfer::TransferPlane>(config, ctx.zmq, ctx.reactor, ctx.keys,
                                                           /*serve=*/!ctx.checkOnly);
    agent::RoleParts parts;
    parts.runner = std::make_unique<transfer::FetchRunner>(plane);
    parts.dataEndpoint = plane->advertisedEndpoint();
    parts.keepAlive = plane;
    return parts;
  });
}
