#pragma once

// A job for several sites whose definitions differ by a layer (a site's mirrors, its Glance
// properties): the sites are grouped by what their definitions merge to, so each distinct image
// is built once and every site that wants the same one shares its build.

#include <map>
#include <string>
#include <vector>

#include "definition/bundle.h"

namespace imgpipe::coord {

// A submit target resolved: the controller and the name the operator gave it.
struct ResolvedTarget {
  std::string controller;
  std::string name;  // "site-b" (or the controller's own name when that was given)
};

// One image of a submit: its definition (with only what it refers to) and where it goes.
struct DefinitionGroup {
  definition::Bundle bundle;
  std::string identity;  // definition::mergedIdentity(bundle)
  std::vector<ResolvedTarget> targets;
};

// `definitionOf`: controller -> bundle path of that target's definition; every other target gets
// the bundle's root. Groups come in the order of their first target. Throws Error naming the
// target whose definition is not in the bundle or does not parse.
std::vector<DefinitionGroup> groupByDefinition(
    const definition::Bundle& whole, const std::vector<ResolvedTarget>& targets,
    const std::map<std::string, std::string>& definitionOf);

// The versions of a submit's groups, one each: `version` (the definitions' own, or derived) for
// the first group with a given image name, `<version>-<first target>` for a later group of the
// same name, so that two images of one job never share a name and version. Throws Error when
// such a version is not a valid one.
std::vector<std::string> groupVersions(const std::vector<DefinitionGroup>& groups,
                                       const std::vector<std::string>& names,
                                       const std::vector<std::string>& versions);

}  // namespace imgpipe::coord
