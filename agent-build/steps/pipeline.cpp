#include "agent-build/steps/step.h"

namespace imgpipe::build {

std::vector<std::unique_ptr<Step>> makePipeline() {
  std::vector<std::unique_ptr<Step>> steps;
  steps.push_back(makeFetchBaseStep());
  steps.push_back(makeFetchInputsStep());
  steps.push_back(makeReuseStep());
  steps.push_back(makeResizeStep());  // resize happens before anything is installed
  steps.push_back(makeAttachStep());
  steps.push_back(makeGrowStep());
  steps.push_back(makeMountStep());
  steps.push_back(makeMirrorsStep());  // before packages: apt must use the site's mirrors
  steps.push_back(makeRepositoriesStep());
  steps.push_back(makePackagesStep());
  steps.push_back(makeLiveBootStep());  // outputs: [iso]: before scripts and cleanup
  steps.push_back(makeFilesStep());
  steps.push_back(makeScriptsStep());
  steps.push_back(makeAnsibleStep());  // after packages and scripts, before cleanup
  steps.push_back(makeCloudInitStep());
  steps.push_back(makeServicesStep());
  steps.push_back(makeCleanupStep());
  steps.push_back(makeUnmountStep());
  steps.push_back(makeCompactStep());
  steps.push_back(makeRawDigestsStep());
  steps.push_back(makeValidateStep());
  steps.push_back(makeLiveIsoStep());  // of the validated image; booted by boot_test
  steps.push_back(makeBootTestStep());
  steps.push_back(makeManifestStep());  // last: it records every step's timing and the checks
  return steps;
}

std::vector<std::string> plannedSteps(const definition::ImageDefinition& def) {
  std::vector<std::string> names;
  for (const auto& step : makePipeline())
    if (step->skipReason(def).empty()) names.emplace_back(step->name());
  return names;
}

}  // namespace imgpipe::build
