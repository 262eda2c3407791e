#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/yaml_reader.h"
#include "definition/outputs.h"

namespace imgpipe::coord {

// Which agents can send artifacts to which, and where the controllers are. From the
// coordinator config:
//
//   topology:
//     sites:
//       - {name: site-a, controller: ctrl-a}        # controller = a glance agent's name
//     links:
//       - {from: build, to: relay-1}                # "build": every build agent
//       - {from: relay-1, to: ctrl-a, endpoint: tcp://198.18.1.1:7701, rate_limit: 40mbit}
//     default_targets: [site-a]
//
// `endpoint` is the address of `from`'s artifact server as `to` reaches it (default: the
// endpoint `from` advertises). Without any links, every build agent sends straight to every
// controller.
struct Link {
  std::string from;  // agent name or "build"
  std::string to;
  std::string endpoint;
  std::uint64_t rateLimit = 0;  // bytes/s; 0 = unlimited
};

struct Site {
  std::string name;
  std::string controller;
  // The output kinds this site registers (a Ceph site: raw); empty: every one the image has.
  std::vector<definition::OutputKind> outputs;
};

// One hop of a delivery plan: `to` fetches from `from`.
struct Hop {
  std::string from, to;
  std::string endpoint;  // override, may be empty
  std::uint64_t rateLimit = 0;
  bool operator==(const Hop&) const = default;
};

class Topology {
 public:
  static Topology parse(const YamlReader& section);

  // Resolves a submit target (site or controller name) to a controller agent name.
  std::optional<std::string> controllerFor(const std::string& target) const;
  const std::vector<std::string>& defaultTargets() const { return defaultTargets_; }
  const std::vector<Site>& sites() const { return sites_; }
  const std::vector<Link>& links() const { return links_; }

  // What `controller` registers of an image made with `imageOutputs`: its site's outputs among
  // them, or all of them where the site names none. Fails (Error) naming the site when it takes
  // none of them.
  std::vector<definition::OutputKind> outputsAt(
      const std::string& controller, const std::vector<definition::OutputKind>& imageOutputs) const;

  // The delivery tree from a build agent to every controller, shortest paths, each shared hop
  // once, parents before children. Fails (Error) naming the controller that has no route.
  std::vector<Hop> plan(const std::string& buildAgent,
                        const std::vector<std::string>& controllers) const;

 private:
  std::vector<Site> sites_;
  std::vector<Link> links_;
  std::vector<std::string> defaultTargets_;
};

}  // namespace imgpipe::coord
