// Step 9b: the acceptance boot. The finished image booted as a cloud boots it — its own
// bootloader under BIOS (and UEFI where it has an ESP), a disk larger than the image, a NoCloud
// seed, user networking, the guest agent's channel — or its root in a container (method:
// nspawn), and checked from inside: cloud-init done, no failed units, the default user's
// groups, the root grown, machine-id and host keys made at first boot, services active, the
// guest agent answering, DNS, the hostname from the metadata, the definition's own checks
// (agent-build/boot/). The image is never modified.
#include <sstream>

#include "agent-build/boot/acceptance_boot.h"
#include "agent-build/boot/image_facts.h"
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

std::string oneDecimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

class BootTestStep : public Step {
 public:
  std::string_view name() const override { return "boot_test"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.validation.bootTest.enabled ? "" : "acceptance boot disabled (validation.boot_test)";
  }

  std::string run(BuildContext& ctx) override {
    auto exec = ctx.exec(ctx.def.validation.bootTest.timeout * 3 + std::chrono::minutes(5));
    const fs::path scratch = ctx.workDir / "boot";
    const auto facts = inspectImage(ctx.output, scratch / "inspect", ctx.def.disk.rootLabel, exec);
    const auto options = acceptanceOptions(ctx.def, facts, ctx.config);
    const auto info = [&](const std::string& line) { ctx.log.info(line); };
    const auto booted = definition::bootedOutputs(ctx.def);
    std::vector<BootRun> runs;
    if (definition::lists(booted, definition::OutputKind::qcow2))
      runs = runAcceptanceBoot(ctx.output, options, scratch, exec, info);
    else
      ctx.log.info("the qcow2 is not booted (validation.boot_test.outputs: " +
                   definition::namesOf(booted) + ")");
    if (!ctx.liveIso.empty() && definition::lists(booted, definition::OutputKind::iso)) {
      if (options.spec.method == definition::BootMethod::qemu) {
        auto live = runLiveAcceptanceBoot(ctx.liveIso, options, scratch, exec, info);
        runs.insert(runs.end(), live.begin(), live.end());
      } else {
        ctx.log.warn("the live ISO is not booted: method nspawn boots a root, not an ISO");
      }
    }
    if (runs.empty())
      throw Error("the acceptance boot booted nothing (validation.boot_test.outputs: " +
                  definition::namesOf(booted) + ")");
    std::string summary;
    for (const auto& r : runs) {
      const std::string where = r.where();
      for (const auto& c : r.checks)
        ctx.log.detail(std::string(c.ok ? "ok     " : "FAILED ") + "[" + where + "] " + c.check +
                       (c.detail.empty() ? "" : ": " + c.detail));
      for (const auto& [check, why] : r.skipped)
        ctx.log.detail("skip   [" + where + "] " + check + ": " + why);
      summary += (summary.empty() ? "" : ", ") + where + " " +
                 std::to_string(r.checks.size() - r.failedChecks().size()) + "/" +
                 std::to_string(r.checks.size()) + " checks in " + oneDecimal(r.seconds) + " s";
    }
    ctx.validation["boot_test"] = bootTestJson(runs);
    if (!ctx.validation["boot_test"]["passed"].get<bool>()) throw Error(bootTestFailure(runs));
    return summary +
           (runs.empty() || runs.front().accel.empty() ? "" : " (" + runs.front().accel + ")");
  }
};

}  // namespace

std::unique_ptr<Step> makeBootTestStep() {
  return std::make_unique<BootTestStep>();
}

}  // namespace imgpipe::build
