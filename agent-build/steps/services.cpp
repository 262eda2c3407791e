// Step 5g: services enabled, disabled and masked with the image's own systemctl (offline mode in
// the sandbox: it edits the unit symlinks, starts nothing).
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class ServicesStep : public Step {
 public:
  std::string_view name() const override { return "services"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.services.empty() ? "no services" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& s = ctx.session();
    const auto& sv = ctx.def.services;
    auto each = [&](const char* verb, const std::vector<std::string>& units) {
      if (units.empty()) return;
      std::vector<std::string> argv = {"systemctl", verb};
      argv.insert(argv.end(), units.begin(), units.end());
      s.run(argv);
    };
    each("enable", sv.enable);
    each("disable", sv.disable);
    each("mask", sv.mask);
    return std::to_string(sv.enable.size()) + " enabled, " + std::to_string(sv.disable.size()) +
           " disabled, " + std::to_string(sv.mask.size()) + " masked";
  }
};

}  // namespace

std::unique_ptr<Step> makeServicesStep() {
  return std::make_unique<ServicesStep>();
}

}  // namespace imgpipe::build
