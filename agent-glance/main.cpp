// imgpipe-agent-glance: receives images from the last hop and registers them in the site's Glance
// (see registration/).
#include "agent-glance/glance_probe.h"
#include "agent-glance/glance_runner.h"
#include "common/agent/agent_main.h"
#include "common/log.h"
#include "transfer/plane_runner.h"
#include "transfer/transfer_config.h"

using namespace imgpipe;

int main(int argc, char** argv) {
  return agent::agentMain(argc, argv, Role::glance, [](agent::RoleContext& ctx) {
    glance::GlanceConfig config = glance::parseGlanceConfig(ctx.config.at("glance"));
    spdlog::info("glance: {}", glance::describe(config));
    // A controller is the last hop: it fetches, and serves nobody unless its transfer: section
    // says so.
    auto transfer = transfer::parseTransferConfig(ctx.config.at("transfer"), ctx.common.stateDir,
                                                  /*serveByDefault=*/false);
    const bool serve = !transfer.listen.empty() && !ctx.checkOnly;
    auto plane =
        std::make_shared<transfer::TransferPlane>(transfer, ctx.zmq, ctx.reactor, ctx.keys, serve);
    glance::ArtifactLocator locate = [plane](const std::string& artifactId) {
      auto a = plane->store().find(artifactId);
      if (!a || !a->complete())
        throw Error("artifact " + artifactId + " is not in this agent's store (" +
                    plane->config().storeDir.string() +
                    "); the fetch before registration did not complete");
      return glance::LocatedArtifact{a->dataPath(), a->manifest().metadata, a->digest(),
                                     plane->store().scratch().path(), a->manifest().output};
    };
    agent::RoleParts parts;
    parts.probe = [config] { return glance::probeGlance(config); };
    parts.runner = std::make_unique<transfer::PlaneRunner>(
        plane, std::make_unique<glance::GlanceRunner>(std::move(config), std::move(locate)));
    parts.dataEndpoint = plane->advertisedEndpoint();
    parts.keepAlive = plane;
    return parts;
  });
}
