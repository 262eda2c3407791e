#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "tests/support/process.h"

namespace imgpipe::test {

struct LinkOptions {
  std::string rate = "40mbit";  // tbf rate on each end; "" = unshaped
  int mtu = 1500;
  // A long, lossy path (a WireGuard tunnel across borders): each direction holds every packet
  // this long and drops this share, through imgpipe-link-delay (NFQUEUE; no netem here).
  std::chrono::milliseconds delay{0};  // one way
  double lossPercent = 0;              // each way
};

struct LinkCounters {
  std::uint64_t txBytes = 0, rxBytes = 0, txPackets = 0, rxPackets = 0;
};

// A multi-host topology on one machine for transfer tests and benchmarks: network namespaces
// joined by veth pairs, each end rate-limited with tbf (the only shaping qdisc this kernel has),
// segmentation offloads off so tbf sees wire-size packets, addresses from 198.18.0.0/15
// (RFC 2544's benchmark range). Names are unique per process ("ipt<pid>-<host>"); namespaces
// left behind by an earlier run that died are removed on construction. Teardown (destructor)
// runs whatever happened in the test. Every host runs TCP with cubic, what users' hosts run (this
// machine defaults to BBR, which hides what loss and delay do to a single stream). Root only.
// Resource type.
class NetTopology {
 public:
  NetTopology();
  ~NetTopology();
  NetTopology(const NetTopology&) = delete;
  NetTopology& operator=(const NetTopology&) = delete;

  // False when the machine cannot do this (not root, no `ip netns`): tests skip.
  static bool available(std::string* why);

  void addHost(const std::string& host);
  void link(const std::string& a, const std::string& b, const LinkOptions& options = {});
  // Connects `host` to this machine's own network namespace, NATed to whatever lies beyond (a
  // build host needs Debian's mirror). `host`'s default route goes there.
  void uplink(const std::string& host);
  // The root namespace's address on `host`'s uplink: where `host` reaches this machine.
  const std::string& uplinkGateway(const std::string& host) const {
    return uplinkGateways_.at(host);
  }
  // Lets `host` route packets between its links (a relay site's router).
  void forwarding(const std::string& host);
  // Static route on `host` to `dest`'s address on its link with `destPeer`, via `gateway`.
  void addRoute(const std::string& host, const std::string& destHost, const std::string& destPeer,
                const std::string& gateway);

  const std::string& ns(const std::string& host) const { return hosts_.at(host); }
  // `host`'s address on its link to `peer`.
  std::string address(const std::string& host, const std::string& peer) const;
  // The device on `host` that leads to `peer`.
  std::string device(const std::string& host, const std::string& peer) const;

  // Takes the link down (both ends) and back up, restoring the static routes `ip` deletes.
  void linkDown(const std::string& a, const std::string& b);
  void linkUp(const std::string& a, const std::string& b);
  // A black hole instead: the link stays up but nothing gets across (blackhole routes to the
  // peer's address on both ends; this kernel has no netem and no tc drop action). Like a
  // WireGuard tunnel whose path died: no error reaches the far side, only silence.
  void blackhole(const std::string& a, const std::string& b, bool on);
  LinkCounters counters(const std::string& host, const std::string& peer) const;
  // Changes the delay and loss of a link while it carries traffic (a path that turns lossy for
  // a minute, and back).
  void impair(const std::string& a, const std::string& b, std::chrono::milliseconds delay,
              double lossPercent);
  // Whether this machine can emulate delay and loss (imgpipe-link-delay built, iptables-legacy).
  static bool canDelay(std::string* why);

  // argv prefixed to run inside `host`'s namespace.
  std::vector<std::string> inHost(const std::string& host, std::vector<std::string> argv) const;
  void run(const std::string& host, std::vector<std::string> argv) const;  // throws on failure

 private:
  struct Link {
    std::string a, b;
    std::string addrA, addrB;
    std::string devA, devB;
    int queue = 0;  // NFQUEUE numbers queue (into a) and queue + 1 (into b)
  };
  struct Route {
    std::string host, dest, gateway;
  };
  const Link& findLink(const std::string& a, const std::string& b) const;
  void restoreRoutes();
  void startDelays(const Link& l, std::chrono::milliseconds delay, double lossPercent);

  std::string prefix_;
  std::map<std::string, std::string> hosts_;  // host -> namespace
  std::vector<Link> links_;
  std::vector<Route> routes_;
  std::map<std::string, std::unique_ptr<Daemon>> delays_;  // receiving device -> its delayer
  std::vector<std::string> natTables_;  // nft tables in the root namespace, removed on teardown
  std::vector<std::string> rootDevices_;
  std::map<std::string, std::string> uplinkGateways_;  // host -> root namespace's address
  bool restoreForwarding_ = false;  // this topology turned on the root namespace's ip_forward
  // What net.ipv4.tcp_allowed_congestion_control was before this topology added cubic to it, and
  // what it set: put back on teardown unless someone changed it since.
  std::string allowedCcBefore_, allowedCcSet_;
};

// A Daemon (tests/support/process.h) started inside `host`'s namespace.
class NetDaemon : public Daemon {
 public:
  NetDaemon(const NetTopology& net, const std::string& host, std::vector<std::string> argv,
            std::filesystem::path log)
      : Daemon(net.inHost(host, std::move(argv)), std::move(log)) {}
};

// The imgpipe-transfer tool built next to the tests.
std::filesystem::path transferTool();

}  // namespace imgpipe::test
