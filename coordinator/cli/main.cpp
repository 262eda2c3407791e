// imgpipe: the operators' command line.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/log.h"
#include "common/yaml_reader.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/doctor.h"

using namespace imgpipe::cli;

int main(int argc, char** argv) {
  CLI::App app{
      "imgpipe: build VM images and deliver them into Glance\n\n"
      "exit codes: 0 ok, 1 job failed or cancelled, 2 usage or invalid input,\n"
      "            3 coordinator unreachable, 4 not authorized, 5 request rejected (unknown job, "
      "wrong state)"};
  app.require_subcommand(1);
  GlobalOptions g;
  app.add_option("--config", g.config,
                 "CLI config (default $IMGPIPE_CONFIG or /etc/imgpipe/imgpipe.yaml)");
  app.add_option("--coordinator", g.coordinator, "coordinator endpoint, e.g. tcp://10.0.0.1:7700");
  app.add_option("--coordinator-key", g.coordinatorKey,
                 "coordinator public key file (or the key itself)");
  app.add_option("--key", g.key, "operator secret key file");
  app.add_option("--timeout", g.timeout, "how long to wait for the coordinator")
      ->capture_default_str();
  app.add_flag("--json", g.json, "machine-readable output");

  std::string name, dir = ".", file, job;
  std::vector<std::string> targets, labels, states;
  int priority = 0;
  bool wait = false, followEvents = false;
  unsigned limit = 50;

  auto* keygen =
      app.add_subcommand("keygen", "write a CurveZMQ key pair NAME.key (0600) and NAME.pub");
  keygen->add_option("name", name, "key name (the agent or operator name)")->required();
  keygen->add_option("--dir", dir, "directory")->capture_default_str();
  auto* validate = app.add_subcommand("validate", "check an image definition without building");
  validate->add_option("file", file)->required();
  std::string importBase, importSha256, importOut;
  bool importForce = false;
  auto* importImages =
      app.add_subcommand("import-images-yaml",
                         "turn each entry of a Packer-style .images.yaml into an image definition");
  importImages->add_option("file", file)->required();
  importImages
      ->add_option("--base", importBase,
                   "the base of every definition: a path, an https:// URL or debootstrap:SUITE")
      ->required();
  importImages->add_option("--base-sha256", importSha256, "the SHA-256 of a URL base");
  importImages->add_option("--out", importOut, "where to write NAME.yaml (default: beside FILE)");
  importImages->add_flag("--force", importForce, "replace definitions that exist");
  auto* submit = app.add_subcommand("submit", "submit an image definition as a new job");
  submit->add_option("file", file)->required();
  submit->add_option("-t,--target", targets,
                     "site or controller to deliver to (repeatable); SITE=FILE: that site gets "
                     "FILE's definition, a layer beside DEFINITION (one build per distinct "
                     "merged definition)");
  submit->add_option("-p,--priority", priority, "higher runs first");
  submit->add_option("-l,--label", labels, "required build agent label (repeatable)");
  submit->add_flag("-w,--wait", wait, "follow the job until it ends; exit 1 if it fails");
  auto* list = app.add_subcommand("list", "list jobs, newest first");
  list->add_option("-s,--state", states, "only jobs in this state (repeatable)");
  list->add_option("-n,--limit", limit)->capture_default_str();
  auto* show = app.add_subcommand("show", "a job in detail");
  show->add_option("job", job)->required();
  auto* watch = app.add_subcommand("watch", "follow a job live until it ends; exit 1 if it fails");
  watch->add_option("job", job)->required();
  auto* events = app.add_subcommand("events", "a job's event log");
  events->add_option("job", job)->required();
  events->add_flag("-f,--follow", followEvents, "keep printing until the job ends");
  auto* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("job", job)->required();
  auto* retry =
      app.add_subcommand("retry", "run the failed steps of a failed or cancelled job again");
  retry->add_option("job", job)->required();
  auto* agents = app.add_subcommand("agents", "the agents and their state");
  std::vector<std::string> doctorConfigs;
  auto* doctor = app.add_subcommand(
      "doctor", "check this host's prerequisites for its imgpipe roles; exit 1 if any fails");
  doctor->add_option("configs", doctorConfigs,
                     "config files to check (default: those in /etc/imgpipe)");
  std::string doctorRole;
  doctor->add_option("--role", doctorRole,
                     "role of an agent config whose file name does not say (build, relay, glance)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }
  imgpipe::log::init("imgpipe", "warn");
  try {
    if (keygen->parsed()) return cmdKeygen(name, dir, g.json);
    if (validate->parsed()) return cmdValidate(file, g.json);
    if (importImages->parsed())
      return cmdImportImagesYaml(file, importBase, importSha256, importOut, importForce, g.json);
    if (submit->parsed()) return cmdSubmit(g, file, targets, priority, labels, wait);
    if (list->parsed()) return cmdList(g, states, limit);
    if (show->parsed()) return cmdShow(g, job);
    if (watch->parsed()) return cmdWatch(g, job);
    if (events->parsed()) return cmdEvents(g, job, followEvents);
    if (cancel->parsed()) return cmdCancel(g, job);
    if (retry->parsed()) return cmdRetry(g, job);
    if (agents->parsed()) return cmdAgents(g);
    if (doctor->parsed()) return cmdDoctor(doctorConfigs, doctorRole, g.json);
  } catch (const CliError& e) {
    std::cerr << "imgpipe: " << e.what() << "\n";
    return e.code();
  } catch (const imgpipe::YamlError& e) {
    std::cerr << "imgpipe: " << e.what() << "\n";
    return kUsage;
  } catch (const imgpipe::Error& e) {
    std::cerr << "imgpipe: " << e.what() << "\n";
    return kUsage;
  }
  return kUsage;
}
