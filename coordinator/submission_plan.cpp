#include "coordinator/submission_plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "definition/image_definition.h"
#include "protocol/ids.h"

namespace imgpipe::coord {
namespace {

SubmissionPlan refused(const std::string& why) {
  return {{}, Error(why, ErrorKind::refused)};
}

}  // namespace

SubmissionPlan planSubmission(const SubmissionRequest& request, const Topology& topology,
                              std::chrono::system_clock::time_point now,
                              const DefinitionInspector& inspect) {
  std::vector<std::string> targets = request.targets;
  // A target with a definition of its own: which one, by controller.
  std::map<std::string, std::string> definitionOf;
  std::string problem;
  for (const auto& [target, path] : request.siteDefinitions) {
    auto c = topology.controllerFor(target);
    if (!c)
      problem = "unknown target " + ids::printable(target);
    else if (!request.bundle.find(path))
      problem = "the definition of " + target + " ('" + ids::printable(path) +
                "') is not in the definition bundle";
    else if (auto [it, added] = definitionOf.emplace(*c, path); !added && it->second != path)
      problem = target + " is given two definitions (" + it->second + " and " + path + ")";
    if (std::find(targets.begin(), targets.end(), target) == targets.end())
      targets.push_back(target);
  }
  if (targets.empty()) targets = topology.defaultTargets();
  if (targets.empty())
    return refused("no --target given and the coordinator has no topology.default_targets");
  std::vector<ResolvedTarget> resolved;
  std::string unknown;
  for (const auto& t : targets) {
    auto c = topology.controllerFor(t);
    if (!c)
      unknown += (unknown.empty() ? "" : ", ") + ids::printable(t);
    else if (std::none_of(resolved.begin(), resolved.end(),
                          [&](const ResolvedTarget& known) { return known.controller == *c; }))
      resolved.push_back({*c, t});
  }
  if (!unknown.empty()) {
    std::string known;
    for (const auto& site : topology.sites())
      known += (known.empty() ? "" : ", ") + site.name + " (" + site.controller + ")";
    return refused("unknown target " + unknown +
                   "; known sites: " + (known.empty() ? "none" : known));
  }
  if (!problem.empty()) return refused(problem);

  // One job per distinct merged definition, each with the targets that want it.
  try {
    auto groups = groupByDefinition(request.bundle, resolved, definitionOf);
    std::vector<std::string> names, versions;
    // The one version of each job, fixed here and carried to the build, the manifest and Glance.
    const std::string derived = definition::deriveVersion(now);
    std::vector<bool> derivedVersion;
    for (const auto& g : groups) {
      auto [name, version] = inspect(g.bundle);
      derivedVersion.push_back(version.empty());
      names.push_back(std::move(name));
      versions.push_back(version.empty() ? derived : std::move(version));
    }
    versions = groupVersions(groups, names, versions);
    SubmissionPlan plan;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      PlannedJob job;
      job.imageName = names[g];
      job.imageVersion = versions[g];
      job.derivedVersion = derivedVersion[g];
      job.definitionDigest = groups[g].bundle.digest();
      job.bundle = std::move(groups[g].bundle);
      job.targets = std::move(groups[g].targets);
      plan.jobs.push_back(std::move(job));
    }
    return plan;
  } catch (const Error& e) {
    // Every Error here is about what was sent: a definition that does not parse, a layer or a
    // file missing, a limit broken.
    return refused(e.what());
  }
}

void takeVersions(std::vector<PlannedJob>& jobs, const VersionTaken& versionTaken) {
  std::set<std::pair<std::string, std::string>> planned;
  for (auto& job : jobs) {
    if (job.derivedVersion) {
      const std::string wanted = job.imageVersion;
      for (int n = 2; planned.count({job.imageName, job.imageVersion}) ||
                      versionTaken(job.imageName, job.imageVersion);
           ++n)
        job.imageVersion = wanted + "-" + std::to_string(n);
    }
    planned.insert({job.imageName, job.imageVersion});
  }
}

}  // namespace imgpipe::coord
