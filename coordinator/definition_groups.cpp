#include "coordinator/definition_groups.h"

#include <set>
#include <utility>

#include "common/error.h"
#include "protocol/ids.h"

namespace imgpipe::coord {

std::vector<DefinitionGroup> groupByDefinition(
    const definition::Bundle& whole, const std::vector<ResolvedTarget>& targets,
    const std::map<std::string, std::string>& definitionOf) {
  std::vector<DefinitionGroup> groups;
  std::map<std::string, std::size_t> groupOfPath;  // each definition merged and hashed once
  std::set<std::string> named;  // the files some definition of the submit extends or refers to
  for (const auto& target : targets) {
    const auto it = definitionOf.find(target.controller);
    const std::string path = it == definitionOf.end() ? whole.rootPath : it->second;
    auto known = groupOfPath.find(path);
    if (known == groupOfPath.end()) {
      definition::Bundle bundle;
      try {
        bundle = definition::definitionBundle(whole, path);
      } catch (const Error& e) {
        throw Error("the definition of " + target.name + " (" + path + "): " + e.what());
      }
      for (const auto& [file, data] : bundle.files)
        named.insert(file);
      std::string identity = definition::mergedIdentity(bundle);
      std::size_t index = groups.size();
      for (std::size_t g = 0; g < groups.size(); ++g)
        if (groups[g].identity == identity) index = g;
      if (index == groups.size()) groups.push_back({std::move(bundle), std::move(identity), {}});
      known = groupOfPath.emplace(path, index).first;
    }
    groups[known->second].targets.push_back(target);
  }
  // Each definition's bundle holds only what it names; a file of the submit that none of them
  // names would be dropped unchecked: it is refused instead, so what was sent is what runs.
  for (const auto& [path, data] : whole.files) {
    (void)data;
    if (!named.contains(path)) {
      std::string roots;
      for (const auto& [root, index] : groupOfPath)
        roots += (roots.empty() ? "" : ", ") + root;
      throw Error("the definition bundle holds '" + ids::printable(path) +
                  "', which no definition of this submit (" + roots +
                  ") extends or refers to; a bundle carries only what its definitions name");
    }
  }
  return groups;
}

std::vector<std::string> groupVersions(const std::vector<DefinitionGroup>& groups,
                                       const std::vector<std::string>& names,
                                       const std::vector<std::string>& versions) {
  std::vector<std::string> out;
  std::set<std::pair<std::string, std::string>> taken;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::string version = versions[g];
    if (!taken.insert({names[g], version}).second) {
      version += "-" + groups[g].targets.front().name;
      if (!ids::valid(ids::Kind::imageVersion, version) ||
          !taken.insert({names[g], version}).second)
        throw Error("the definition of " + groups[g].targets.front().name + " (" +
                    groups[g].bundle.rootPath + ") makes another image named " + names[g] + " " +
                    versions[g] + " and '" + version +
                    "' is not a version it can have instead: give it a version of its own");
    }
    out.push_back(std::move(version));
  }
  return out;
}

}  // namespace imgpipe::coord
