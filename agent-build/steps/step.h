#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent-build/steps/build_context.h"

namespace imgpipe::build {

// One build step (osbuild-style stage): a small unit with a name, driven by the definition and
// the context, with its own log lines and timing. Adding a step touches no other step.
class Step {
 public:
  virtual ~Step() = default;
  virtual std::string_view name() const = 0;
  // Why the step does not apply to this definition (nothing to do); empty: it runs.
  virtual std::string skipReason(const definition::ImageDefinition& /*def*/) const { return {}; }
  // Steps that still run when an earlier result is reused (fetching inputs, the manifest).
  virtual bool runsWhenReused() const { return false; }
  // Does the work; returns a one-line summary logged at the step's end.
  virtual std::string run(BuildContext& ctx) = 0;
};

// Every step, in the order a build runs them.
std::vector<std::unique_ptr<Step>> makePipeline();

// The names of the steps that run for a definition, in order (skipped ones left out) — what a
// build of it will report, for `validate` output and tests.
std::vector<std::string> plannedSteps(const definition::ImageDefinition& def);

// Factories, one per file in steps/.
std::unique_ptr<Step> makeFetchBaseStep();
std::unique_ptr<Step> makeFetchInputsStep();
std::unique_ptr<Step> makeReuseStep();
std::unique_ptr<Step> makeResizeStep();
std::unique_ptr<Step> makeAttachStep();
std::unique_ptr<Step> makeGrowStep();
std::unique_ptr<Step> makeMountStep();
std::unique_ptr<Step> makeMirrorsStep();
std::unique_ptr<Step> makeRepositoriesStep();
std::unique_ptr<Step> makePackagesStep();
std::unique_ptr<Step> makeLiveBootStep();
std::unique_ptr<Step> makeFilesStep();
std::unique_ptr<Step> makeScriptsStep();
std::unique_ptr<Step> makeAnsibleStep();
std::unique_ptr<Step> makeCloudInitStep();
std::unique_ptr<Step> makeServicesStep();
std::unique_ptr<Step> makeCleanupStep();
std::unique_ptr<Step> makeUnmountStep();
std::unique_ptr<Step> makeCompactStep();
std::unique_ptr<Step> makeRawDigestsStep();
std::unique_ptr<Step> makeLiveIsoStep();
std::unique_ptr<Step> makeValidateStep();
std::unique_ptr<Step> makeBootTestStep();
std::unique_ptr<Step> makeManifestStep();

}  // namespace imgpipe::build
