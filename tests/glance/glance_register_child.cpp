// Runs one registration in its own process, so a test can kill it mid-upload (SIGKILL) or make
// it crash at a named checkpoint (--crash-at created) the way a power cut or OOM kill would.
//   glance_register_child --config agent.yaml --definition def.yaml --file image.qcow2
//                         --build-id B [--crash-at CHECKPOINT]
// Prints the image id and exits 0 on success; exits 1 with the error on stderr otherwise.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "agent-glance/glance_config.h"
#include "agent-glance/registration/registrar.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/log.h"
#include "tests/glance/spec_for.h"

using namespace imgpipe;
using namespace imgpipe::glance;

int main(int argc, char** argv) {
  CLI::App app{"run one Glance registration (test helper)"};
  std::string configPath, definitionPath, file, buildId, crashAt;
  app.add_option("--config", configPath)->required();
  app.add_option("--definition", definitionPath)->required();
  app.add_option("--file", file)->required();
  app.add_option("--build-id", buildId)->required();
  app.add_option("--crash-at", crashAt);
  CLI11_PARSE(app, argc, argv);
  try {
    log::init("register-child", "info");
    auto doc = YamlReader::fromFile(configPath);
    GlanceConfig config = parseGlanceConfig(doc.at("glance"));
    auto auth = makeAuthProvider(config);
    RegistrationRequest req;
    req.jobId = "child";
    req.buildId = buildId;
    req.file = file;
    FileDigests d = hashFile(file);
    req.sha256 = toHex(d.sha256);
    req.sha512 = toHex(d.sha512);
    req.size = d.size;
    req.spec = glance::test::specFor(readFile(definitionPath));
    RegistrationObserver observer;
    observer.checkpoint = [&](std::string_view name) {
      if (name == crashAt) {
        std::cerr << "crashing at " << name << "\n";
        ::_exit(137);  // no unwinding, no cleanup: like a kill -9
      }
    };
    Registrar registrar(config, *auth, observer);
    auto result = registrar.run(req, {});
    std::cout << result.image.id << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "glance_register_child: " << e.what() << "\n";
    return 1;
  }
}
