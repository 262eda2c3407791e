// `imgpipe-agent-build boot-test IMAGE DEF.yaml`: the acceptance boot of a definition run on an
// existing image, without building — for an operator checking an image by hand, and for the
// tests, which boot deliberately broken variants of one built image.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "agent-build/boot/acceptance_boot.h"
#include "agent-build/boot/image_facts.h"
#include "agent-build/cli/commands.h"
#include "agent-build/mount/namespaces.h"
#include "agent-build/util/stop_signals.h"
#include "common/log.h"
#include "common/temp_dir.h"
#include "common/yaml_reader.h"
#include "definition/parse_definition.h"

namespace imgpipe::build {

namespace fs = std::filesystem;

int bootTestCommand(int argc, char** argv) {
  CLI::App app{"Run a definition's acceptance boot (validation.boot_test) on an existing image"};
  std::string image, file, workDir = "/var/tmp", configFile, method, firmware;
  bool json = false;
  app.add_option("image", image, "the qcow2 image (not modified)")->required();
  app.add_option("definition", file, "the image definition whose checks to run")->required();
  app.add_option("--work-dir", workDir, "where the overlay, seed and console logs go");
  app.add_option("--config", configFile, "an agent config file whose build: section to use");
  app.add_option("--method", method, "qemu or nspawn (default: the definition's)");
  app.add_option("--firmware", firmware, "auto, bios, uefi or both (default: the definition's)");
  app.add_flag("--json", json, "print validation.boot_test as the manifest would hold it");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // Own mount and PID namespaces, as a build child has: the read-only mounts stay in here, and
  // whatever the boot starts (QEMU, nspawn, qemu-storage-daemon) dies with this process.
  enterPrivateMountNamespace();
  enterNewPidNamespace();
  auto stop = stopOnTerminationSignals();
  log::init("imgpipe-agent-build", "info");

  BuildConfig config;
  definition::ImageDefinition def;
  try {
    if (!configFile.empty()) config = loadBuildConfig(configFile);
    def = definition::loadDefinitionFile(file);
    auto& bt = def.validation.bootTest;
    bt.enabled = true;
    if (method == "qemu" || method == "nspawn")
      bt.method = method == "qemu" ? definition::BootMethod::qemu : definition::BootMethod::nspawn;
    else if (!method.empty())
      throw Error("--method must be qemu or nspawn, got '" + method + "'");
    static const std::map<std::string, definition::BootFirmware> firmwares = {
        {"auto", definition::BootFirmware::auto_},
        {"bios", definition::BootFirmware::bios},
        {"uefi", definition::BootFirmware::uefi},
        {"both", definition::BootFirmware::both}};
    if (auto it = firmwares.find(firmware); it != firmwares.end())
      bt.firmware = it->second;
    else if (!firmware.empty())
      throw Error("--firmware must be auto, bios, uefi or both, got '" + firmware + "'");
    if (!fs::is_regular_file(image)) throw Error(image + ": no such image");
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }

  std::FILE* out = json ? stderr : stdout;
  ExecContext exec;
  exec.stop = stop.get_token();
  exec.timeout = def.validation.bootTest.timeout * 3 + std::chrono::minutes(5);
  try {
    fs::create_directories(workDir);
    TempDir scratch(fs::absolute(workDir), "imgpipe-boot-test-");
    auto facts = inspectImage(image, scratch.path() / "inspect", def.disk.rootLabel, exec);
    auto runs = runAcceptanceBoot(image, acceptanceOptions(def, facts, config), scratch.path(),
                                  exec, [&](const std::string& line) {
                                    std::fprintf(out, "%s\n", line.c_str());
                                    std::fflush(out);
                                  });
    for (const auto& r : runs) {
      const std::string where = r.method == "qemu" ? r.firmware : r.method;
      std::fprintf(out, "%s: %.1f s%s\n", where.c_str(), r.seconds,
                   r.accel.empty() ? "" : (" (" + r.accel + ")").c_str());
      for (const auto& c : r.checks)
        std::fprintf(out, "  %-7s %s%s\n", c.ok ? "ok" : "FAILED", c.check.c_str(),
                     c.detail.empty() ? "" : (": " + c.detail).c_str());
      for (const auto& [check, why] : r.skipped)
        std::fprintf(out, "  %-7s %s: %s\n", "skipped", check.c_str(), why.c_str());
    }
    auto result = bootTestJson(runs);
    if (json) std::cout << result.dump(2) << "\n";
    if (result["passed"].get<bool>()) return 0;
    std::fprintf(out, "%s\n", bootTestFailure(runs).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(out, "boot test failed: %s\n", e.what());
    return exec.stop.stop_requested() ? 3 : 1;
  }
}

}  // namespace imgpipe::build
