// Ansible against the image, for real: Debian's ansible on the build host, sandboxed, with the
// chroot connection through the build agent's exec broker. A playbook shaped like the Packer
// seed's provision.yml (apt, a template that notifies a handler, systemd enabled, a shell task,
// roles) builds an image that passes validation and the acceptance boot; a playbook that starts
// a service is refused naming the task and what to use instead, not with a trace.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/subprocess.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build::test;
using nlohmann::json;

namespace {

const fs::path kDefinitions = sourceDir() / "tests/boot/ansible";

struct Outcome {
  int exitCode = -1;
  json manifest;
  std::string log;
};

Outcome buildDefinition(TestArea& area, const fs::path& definition) {
  fixtureBase();  // the definitions' debootstrap recipe is the fixture's: made once
  auto config = area.writeConfig(area.config());
  SubprocessOptions o;
  o.argv = {agentBinary().string(), "build",    definition.string(), "--work-dir",
            area.work().string(),   "--out",    area.out().string(), "--cache-dir",
            area.cache().string(),  "--config", config.string(),     "--json"};
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(40);
  Outcome out;
  o.onLine = [&](std::string_view l) {
    out.log += std::string(l) + "\n";
    std::fprintf(stderr, "[%s] %.*s\n", definition.stem().c_str(), static_cast<int>(l.size()),
                 l.data());
  };
  auto r = runCommand(o);
  out.exitCode = r.exitCode;
  if (r.exitCode == 0) out.manifest = json::parse(r.stdoutText);
  return out;
}

}  // namespace

TEST(AnsibleBuild, AStartedServiceIsRefusedNamingTheTaskAndWhatToUseInstead) {
  TestArea area("ansible-start");
  auto r = buildDefinition(area, kDefinitions / "start-service.yaml");
  EXPECT_NE(r.exitCode, 0);
  EXPECT_NE(r.log.find("task 'Start ssh' (ansible.builtin.systemd, playbook/start-service.yml:7)"),
            std::string::npos)
      << r.log;
  EXPECT_NE(r.log.find("services cannot be started while an image is built"), std::string::npos);
  EXPECT_NE(r.log.find("services.enable"), std::string::npos);
  EXPECT_EQ(r.log.find("Traceback"), std::string::npos);
  EXPECT_TRUE(leftoversUnder(area.root()).empty());
}

TEST(AnsibleBuild, APackerShapedPlaybookBuildsAnImageThatPassesTheAcceptanceBoot) {
  TestArea area("ansible-web");
  auto r = buildDefinition(area, kDefinitions / "ansible-web.yaml");
  ASSERT_EQ(r.exitCode, 0) << r.log;
  // The playbook ran every task, the handler included, through the exec broker.
  bool ran = false;
  for (const auto& s : r.manifest["steps"])
    if (s["step"] == "ansible") ran = s["status"] == "ok";
  EXPECT_TRUE(ran) << r.manifest["steps"].dump(2);
  EXPECT_NE(r.log.find(" commands in the image"), std::string::npos);
  // The playbook's own output is in the build log (the CLI prints step summaries only).
  std::string buildLog;
  for (const auto& e : fs::directory_iterator(area.out()))
    if (e.path().string().ends_with(".build.log")) buildLog = readFile(e.path());
  EXPECT_NE(buildLog.find("RUNNING HANDLER [web : check nginx configuration]"), std::string::npos)
      << buildLog;
  const auto& bt = r.manifest["validation"]["boot_test"];
  ASSERT_TRUE(bt["passed"]) << bt.dump(2);
  for (const auto& boot : bt["boots"])
    for (const auto& c : boot["checks"])
      EXPECT_TRUE(c["ok"]) << c.dump();
  const fs::path image = area.out() / r.manifest["image"]["file"].get<std::string>();
  MountedImage mounted(image, area.root() / "inspect");
  EXPECT_NE(readFile(mounted.root() / "etc/nginx/sites-available/default").find("listen 8080"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(mounted.root() / "root/.ansible"));
  EXPECT_TRUE(leftoversUnder(area.work()).empty());
}
