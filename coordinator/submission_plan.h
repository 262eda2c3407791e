#pragma once

// What a submit becomes before anything is stored: its targets resolved against the topology,
// its sites grouped by merged definition, each group's definition checked and its version fixed.
// planSubmission reads nothing but its arguments, so it runs on a worker thread while the
// reactor serves other requests (check_workers.h); only the -2, -3 suffixing asks the store, and
// that is takeVersions, run on the reactor thread right before the jobs are stored.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "coordinator/definition_check.h"
#include "coordinator/definition_groups.h"
#include "coordinator/topology.h"
#include "definition/bundle.h"

namespace imgpipe::coord {

// A SUBMIT request as values, taken off the message on the reactor thread.
struct SubmissionRequest {
  definition::Bundle bundle;  // the submitted definition (its root) and every file it brought
  std::vector<std::string> targets;  // as the operator gave them; none: the default targets
  // (target, bundle path of its own definition), for `--target SITE=FILE`.
  std::vector<std::pair<std::string, std::string>> siteDefinitions;
};

// One job of a submit: one distinct merged definition and the targets that want it.
struct PlannedJob {
  std::string imageName;
  std::string imageVersion;     // the definition's own, derived from `now`, or `-<site>`
  bool derivedVersion = false;  // takes -2, -3, ... where the version is taken (takeVersions)
  definition::Bundle bundle;    // the group's: its definition, the layers it extends, its files
  std::string definitionDigest;
  std::vector<ResolvedTarget> targets;
};

// Either jobs or a refusal (an Error of kind refused for what the operator sent; another kind for
// a failure of the coordinator's own), never both.
struct SubmissionPlan {
  std::vector<PlannedJob> jobs;
  std::optional<Error> refusal;
};

// Checks one group's definition and its bundle; returns {name, version ("" = derive)} or throws
// Error. The coordinator's is inspectDefinition; engine tests pass their own.
using DefinitionInspector =
    std::function<std::pair<std::string, std::string>(const definition::Bundle& bundle)>;

// `now` is the submit's time, the one a derived version is made of.
SubmissionPlan planSubmission(const SubmissionRequest& request, const Topology& topology,
                              std::chrono::system_clock::time_point now,
                              const DefinitionInspector& inspect = inspectDefinition);

// Whether an image of that name already has that version (the store's jobs).
using VersionTaken = std::function<bool(const std::string& name, const std::string& version)>;

// A derived version that is taken becomes <version>-2, -3, ...: taken means `versionTaken`, or an
// earlier job of `jobs`. Run in the same reactor callback that stores the jobs, so two submits of
// one image whose plans were made at the same time still get two versions.
void takeVersions(std::vector<PlannedJob>& jobs, const VersionTaken& versionTaken);

}  // namespace imgpipe::coord
