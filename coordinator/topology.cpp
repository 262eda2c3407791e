#include "coordinator/topology.h"

#include <algorithm>
#include <deque>
#include <set>

#include "common/error.h"

namespace imgpipe::coord {

Topology Topology::parse(const YamlReader& s) {
  Topology t;
  if (s.isNull()) return t;
  for (auto& item : s.at("sites").items()) {
    Site site{item.required<std::string>("name"), item.required<std::string>("controller"),
              definition::parseOutputs(item.at("outputs"), {})};
    item.rejectUnknownKeys();
    for (const auto& other : t.sites_)
      if (other.name == site.name)
        item.at("name").fail("site '" + site.name + "' is defined twice");
    t.sites_.push_back(site);
  }
  for (auto& item : s.at("links").items()) {
    Link link{item.required<std::string>("from"), item.required<std::string>("to"),
              item.get<std::string>("endpoint", ""), 0};
    if (auto r = item.at("rate_limit"); !r.isNull()) link.rateLimit = r.asRate();
    item.rejectUnknownKeys();
    if (link.from == link.to) item.fail("a link from '" + link.from + "' to itself");
    if (link.to == "build")
      item.at("to").fail("'build' (every build agent) can only be a link's source");
    t.links_.push_back(link);
  }
  t.defaultTargets_ = s.at("default_targets").asStringList();
  s.rejectUnknownKeys();
  for (const auto& target : t.defaultTargets_)
    if (!t.controllerFor(target)) s.at("default_targets").fail("unknown site '" + target + "'");
  return t;
}

std::optional<std::string> Topology::controllerFor(const std::string& target) const {
  for (const auto& site : sites_)
    if (site.name == target || site.controller == target) return site.controller;
  for (const auto& l : links_)
    if (l.to == target) return target;
  // With no topology at all, a target names a controller agent that the build agent reaches
  // directly.
  if (sites_.empty() && links_.empty() && !target.empty()) return target;
  return std::nullopt;
}

std::vector<definition::OutputKind> Topology::outputsAt(
    const std::string& controller, const std::vector<definition::OutputKind>& imageOutputs) const {
  const Site* site = nullptr;
  for (const auto& s : sites_)
    if (s.controller == controller && !s.outputs.empty()) site = &s;
  if (site == nullptr) return imageOutputs;
  std::vector<definition::OutputKind> out;
  for (auto kind : site->outputs)
    if (definition::lists(imageOutputs, kind)) out.push_back(kind);
  if (out.empty())
    throw Error("site '" + site->name + "' takes " + definition::namesOf(site->outputs) +
                " and this image is made as " + definition::namesOf(imageOutputs) +
                "; add one of them to the definition's outputs");
  return out;
}

std::vector<Hop> Topology::plan(const std::string& buildAgent,
                                const std::vector<std::string>& controllers) const {
  // Edges as seen from this build agent: "build" stands for it.
  std::vector<Hop> edges;
  for (const auto& l : links_) {
    edges.push_back({l.from == "build" ? buildAgent : l.from, l.to, l.endpoint, l.rateLimit});
  }
  if (links_.empty())
    for (const auto& c : controllers)
      edges.push_back({buildAgent, c, "", 0});

  // Breadth-first from the build agent; the first path found to a node is a shortest one.
  std::map<std::string, const Hop*> parent;
  std::deque<std::string> queue{buildAgent};
  std::set<std::string> seen{buildAgent};
  while (!queue.empty()) {
    auto node = queue.front();
    queue.pop_front();
    for (const auto& e : edges) {
      if (e.from != node || seen.count(e.to)) continue;
      seen.insert(e.to);
      parent[e.to] = &e;
      queue.push_back(e.to);
    }
  }
  std::vector<Hop> tree;
  std::vector<std::vector<Hop>> paths;
  for (const auto& c : controllers) {
    if (c == buildAgent) continue;
    if (!parent.count(c)) {
      std::string known;
      for (const auto& e : edges)
        known += (known.empty() ? "" : ", ") + e.from + "->" + e.to;
      throw Error("no route from build agent '" + buildAgent + "' to controller '" + c +
                  "' (links: " + (known.empty() ? "none" : known) +
                  "); add a link in the topology");
    }
    std::vector<Hop> path;
    for (std::string n = c; n != buildAgent; n = parent[n]->from)
      path.push_back(*parent[n]);
    std::reverse(path.begin(), path.end());
    paths.push_back(path);
  }
  // Union of the paths, each hop once; a path lists parents first, so the order holds.
  for (const auto& path : paths)
    for (const auto& hop : path)
      if (std::find(tree.begin(), tree.end(), hop) == tree.end()) tree.push_back(hop);
  return tree;
}

}  // namespace imgpipe::coord
