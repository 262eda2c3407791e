// Step 5f: the definition's Ansible playbook, after the scripts and before cloud-init, services
// and cleanup. ansible-playbook runs on the build host in its own sandbox (ansible/controller.h)
// with community.general's chroot connection; every command it sends into the image comes to
// the exec broker, which runs it in the image sandbox with the definition's network, as the
// scripts' commands. The playbook's output goes to the build log; its failures come back named
// by task, with what to do for what cannot work in an image that is not running.
#include <unistd.h>

#include <fstream>

#include "agent-build/ansible/controller.h"
#include "agent-build/ansible/exec_broker.h"
#include "agent-build/ansible/results.h"
#include "agent-build/steps/step.h"
#include "common/beneath.h"
#include "common/file_util.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kAnsiblePlaybook = "/usr/bin/ansible-playbook";
constexpr std::string_view kChrootConnection =
    "/usr/lib/python3/dist-packages/ansible_collections/community/general/plugins/connection/"
    "chroot.py";

void requireAnsible() {
  if (::access(std::string(kAnsiblePlaybook).c_str(), X_OK) != 0 ||
      ::access(std::string(kChrootConnection).c_str(), R_OK) != 0)
    throw Error(
        "ansible: the build agent needs Debian's ansible package (ansible-playbook and the "
        "community.general collection, whose chroot connection runs the playbook against the "
        "image); ansible-core alone has no chroot connection. Install it with "
        "`apt-get install ansible` (scripts/install-deps.sh does)");
}

class AnsibleStep : public Step {
 public:
  std::string_view name() const override { return "ansible"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.ansible ? "" : "no ansible playbook";
  }

  std::string run(BuildContext& ctx) override {
    const auto& spec = *ctx.def.ansible;
    requireAnsible();
    if (ctx.job.bundleDir.empty())
      throw Error(
          "ansible: the playbook travels in the definition's bundle, and this build has "
          "none");
    auto& session = ctx.session();
    const fs::path dir = ctx.workDir / "ansible";
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all);
    for (const auto& [rel, text] : controllerFiles(spec)) {
      fs::create_directories((dir / rel).parent_path());
      writeFileAtomic(dir / rel, text, rel == "chroot" ? 0755 : 0644);
    }
    ExecBroker broker(
        dir / "exec.sock",
        [&](std::vector<std::string> argv) {
          // systemctl acts on unit files without a running manager (what `enabled:` needs).
          return session.commandOptions(std::move(argv), {{"SYSTEMD_OFFLINE", "1"}},
                                        ctx.def.network);
        },
        [&](const std::string& line) { ctx.log.warn(line); });
    const fs::path helper = ctx.config.helper == "/proc/self/exe"
                                ? fs::read_symlink("/proc/self/exe")
                                : ctx.config.helper;
    SubprocessOptions o;
    o.argv = controllerCommand(
        {helper, ctx.job.bundleDir, ctx.rootDir(), dir, ctx.config.sandboxIds}, spec);
    o.clearEnv = true;
    o.env = controllerEnvironment(spec);
    o.onLine = ctx.exec().output;
    o.timeout = spec.timeout;
    o.stop = ctx.stop;
    o.tailLines = 20;
    ctx.log.info("running playbook " + spec.playbook + " (chroot connection, timeout " +
                 formatDuration(spec.timeout) + ")");
    const auto result = runCommand(std::move(o));
    // The controller wrote this directory: the file is read beneath it, never through a symlink
    // it may have left in its place (issue 23), and bounded.
    std::string lines;
    if (fs::exists(fs::symlink_status(dir / "results.jsonl")))
      lines = readFileBeneath(dir, "results.jsonl", 16u << 20);
    const auto results = parsePlaybookResults(lines);
    ctx.checkStop();
    if (result.timedOut)
      throw Error("ansible: the playbook " + spec.playbook + " did not finish within " +
                  formatDuration(spec.timeout) + " (ansible.timeout)");
    if (result.exitCode != 0 || !results.failures.empty()) {
      std::string m = "ansible: the playbook " + spec.playbook + " failed";
      if (!results.failures.empty()) {
        for (const auto& f : results.failures)
          m += "; " + f;
      } else {
        // No task ran: the playbook did not parse, or a role or file is not in the bundle.
        m += " (exit code " + std::to_string(result.exitCode) + ")";
        for (const auto& line : result.tail)
          m += "\n  " + withBundlePaths(line);
      }
      throw Error(m);
    }
    return spec.playbook + ": " + std::to_string(results.ok) + " ok, " +
           std::to_string(results.changed) + " changed, " + std::to_string(broker.commandsRun()) +
           " commands in the image";
  }
};

}  // namespace

std::unique_ptr<Step> makeAnsibleStep() {
  return std::make_unique<AnsibleStep>();
}

}  // namespace imgpipe::build
