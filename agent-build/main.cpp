// imgpipe-agent-build: the build agent daemon, plus standalone modes (see cli/commands.h) and
// the build child (`run-build`, started by the agent itself for every build).
#include <cstring>

#include "agent-build/ansible/exec_client.h"
#include "agent-build/cli/commands.h"
#include "agent-build/config/build_config.h"
#include "agent-build/sandbox/sandbox.h"
#include "agent-build/runner/build_child.h"
#include "agent-build/runner/build_task_runner.h"
#include "common/agent/agent_main.h"
#include "transfer/plane_runner.h"
#include "transfer/transfer_config.h"

using namespace imgpipe;

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "run-build") == 0) return build::runBuildChild();
  // In front of bwrap for every command run inside an image (sandbox/sandbox.h).
  if (argc > 1 && std::strcmp(argv[1], "sandbox-exec") == 0)
    return build::sandboxExecMain(argc - 1, argv + 1);
  // The sandboxed Ansible controller's chroot_exe (ansible/exec_client.h).
  if (argc > 1 && std::strcmp(argv[1], "ansible-exec") == 0)
    return build::ansibleExecMain(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "build") == 0)
    return build::buildCommand(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "prepare-base") == 0)
    return build::prepareBaseCommand(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "boot-test") == 0)
    return build::bootTestCommand(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "validate") == 0)
    return build::validateCommand(argc - 1, argv + 1);

  return agent::agentMain(argc, argv, Role::build, [](agent::RoleContext& ctx) {
    auto config = build::parseBuildConfig(ctx.config.at("build"));
    auto transfer = transfer::parseTransferConfig(ctx.config.at("transfer"), ctx.common.stateDir,
                                                  /*serveByDefault=*/true);
    // The build agent is the first hop: its artifact server hands each image to the next one.
    auto plane = std::make_shared<transfer::TransferPlane>(transfer, ctx.zmq, ctx.reactor, ctx.keys,
                                                           /*serve=*/!ctx.checkOnly);
    // Every file of a build is an artifact of its own, each carrying the build manifest.
    auto publish = [plane](const build::BuildOutput& output, const build::OutputFile& file) {
      return plane->store().importFile(file.file, output.imageName, output.imageVersion,
                                       output.manifestJson, file.kind);
    };
    agent::RoleParts parts;
    parts.runner = std::make_unique<transfer::PlaneRunner>(
        plane, std::make_unique<build::BuildTaskRunner>(config, publish, ctx.common.name));
    parts.dataEndpoint = plane->advertisedEndpoint();
    parts.keepAlive = plane;
    return parts;
  });
}
