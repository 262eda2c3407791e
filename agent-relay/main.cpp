// imgpipe-agent-relay: an agent whose role is the transfer plane. It serves the artifacts in its
// store to the next hop and fetches what the coordinator tells it to from the previous one.
#include "agent-relay/fetch_runner.h"
#include "agent-relay/transfer_config.h"
#include "common/agent/agent_main.h"

using namespace imgpipe;

int main(int argc, char** argv) {
  return agent::agentMain(argc, argv, Role::relay, [](agent::RoleContext& ctx) {
    auto config = relay::parseTransferConfig(ctx.config.at("transfer"), ctx.common.stateDir,
                                             /*serveByDefault=*/true);
    auto plane = std::make_shared<relay::TransferPlane>(config, ctx.zmq, ctx.reactor, ctx.keys,
                                                        /*serve=*/!ctx.checkOnly);
    agent::RoleParts parts;
    parts.runner = std::make_unique<relay::FetchRunner>(plane);
    parts.dataEndpoint = plane->advertisedEndpoint();
    parts.keepAlive = plane;
    return parts;
  });
}
