// imgpipe-agent-glance: registers delivered images in the site's Glance (see registration/).
#include "agent-glance/glance_runner.h"
#include "common/agent/agent_main.h"
#include "common/log.h"

using namespace imgpipe;

int main(int argc, char** argv) {
  return agent::agentMain(argc, argv, Role::glance, [](agent::RoleContext& ctx) {
    glance::GlanceConfig config = glance::parseGlanceConfig(ctx.config.at("glance"));
    spdlog::info("glance: {}", glance::describe(config));
    // Integration point: the transfer plane's artifact store decides where a delivered artifact
    // lies; until it is wired in, <state_dir>/artifacts/<artifact id>.
    const std::filesystem::path store = ctx.common.stateDir / "artifacts";
    glance::ArtifactLocator locate = [store](const std::string& artifactId) {
      return store / artifactId;
    };
    agent::RoleParts parts;
    parts.runner = std::make_unique<glance::GlanceRunner>(std::move(config), std::move(locate));
    return parts;
  });
}
