#include "tests/support/netns.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"

namespace imgpipe::test {
namespace fs = std::filesystem;
namespace {

std::string output(std::vector<std::string> argv) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.captureStdout = true;
  o.timeout = std::chrono::seconds(30);
  return checkCommand(std::move(o));
}

void quiet(std::vector<std::string> argv) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.timeout = std::chrono::seconds(30);
  (void)runCommand(std::move(o));
}

// tbf needs a bucket that holds at least one packet and ~10 ms of traffic.
std::string burstFor(const std::string& rate) {
  double bits = std::stod(rate);
  if (rate.find("gbit") != std::string::npos)
    bits *= 1e9;
  else if (rate.find("mbit") != std::string::npos)
    bits *= 1e6;
  else if (rate.find("kbit") != std::string::npos)
    bits *= 1e3;
  const auto bytes = std::max<std::uint64_t>(16 * 1024, static_cast<std::uint64_t>(bits / 8 / 100));
  return std::to_string(bytes);
}

}  // namespace

bool NetTopology::available(std::string* why) {
  if (::geteuid() != 0) {
    if (why) *why = "needs root (network namespaces)";
    return false;
  }
  SubprocessOptions o;
  o.argv = {"ip", "netns", "list"};
  if (runCommand(o).exitCode != 0) {
    if (why) *why = "`ip netns` does not work here";
    return false;
  }
  return true;
}

NetTopology::NetTopology() : prefix_("ipt" + std::to_string(::getpid())) {
  // Namespaces of earlier runs whose process is gone (a crashed or killed test binary).
  for (const auto& line : [] {
         std::vector<std::string> names;
         std::string text = output({"ip", "netns", "list"});
         size_t pos = 0;
         while (pos < text.size()) {
           auto nl = text.find('\n', pos);
           auto l = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
           names.push_back(l.substr(0, l.find(' ')));
           if (nl == std::string::npos) break;
           pos = nl + 1;
         }
         return names;
       }()) {
    if (!line.starts_with("ipt")) continue;
    auto dash = line.find('-');
    if (dash == std::string::npos) continue;
    const std::string pid = line.substr(3, dash - 3);
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(std::stoi(pid), 0) == 0 || errno == EPERM) continue;
    quiet({"ip", "netns", "del", line});
  }
}

NetTopology::~NetTopology() {
  for (auto& [dev, d] : delays_) {
    fs::remove(d->logPath());
    auto params = d->logPath();
    fs::remove(params.replace_extension(".params"));
  }
  delays_.clear();
  // Processes still inside keep a namespace alive; kill them first, then delete it.
  for (const auto& [host, ns] : hosts_) {
    SubprocessOptions o;
    o.argv = {"ip", "netns", "pids", ns};
    o.captureStdout = true;
    auto r = runCommand(o);
    size_t pos = 0;
    const auto& t = r.stdoutText;
    while (pos < t.size()) {
      auto nl = t.find('\n', pos);
      auto p = t.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      if (!p.empty()) ::kill(std::stoi(p), SIGKILL);
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  for (const auto& [host, ns] : hosts_)
    quiet({"ip", "netns", "del", ns});
  for (const auto& table : natTables_)
    quiet({"nft", "delete", "table", "ip", table});
  for (const auto& dev : rootDevices_)
    quiet({"ip", "link", "del", dev});
  if (restoreForwarding_) quiet({"sysctl", "-qw", "net.ipv4.ip_forward=0"});
  constexpr const char* kAllowed = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
  if (!allowedCcSet_.empty() && readFile(kAllowed) == allowedCcSet_) {
    std::string before = allowedCcBefore_;
    while (!before.empty() && before.back() == '\n')
      before.pop_back();
    quiet({"sysctl", "-qw", "net.ipv4.tcp_allowed_congestion_control=" + before});
  }
}

void NetTopology::uplink(const std::string& host) {
  // The root namespace is shared with every other test process: its side of the uplink gets an
  // address (and device, and nft table) of its own per process and host.
  const int index = (::getpid() * 8 + static_cast<int>(rootDevices_.size())) % 16000;
  const std::string base = "198.19." + std::to_string(index / 64) + ".";
  const std::string rootAddr = base + std::to_string((index % 64) * 4 + 1);
  const std::string hostAddr = base + std::to_string((index % 64) * 4 + 2);
  const std::string rootDev = ("u" + std::to_string(index) + "-" + host).substr(0, 15);
  const std::string hostDev = "uplink0";
  output(
      {"ip", "link", "add", rootDev, "type", "veth", "peer", "name", hostDev, "netns", ns(host)});
  rootDevices_.push_back(rootDev);
  uplinkGateways_[host] = rootAddr;
  output({"ip", "addr", "add", rootAddr + "/30", "dev", rootDev});
  output({"ip", "link", "set", rootDev, "up"});
  run(host, {"ip", "addr", "add", hostAddr + "/30", "dev", hostDev});
  run(host, {"ip", "link", "set", hostDev, "up"});
  run(host, {"ip", "route", "add", "default", "via", rootAddr});
  // The machine's own setting is put back on teardown: a test must not leave it a router.
  if (!restoreForwarding_ && readFile("/proc/sys/net/ipv4/ip_forward").starts_with("0")) {
    output({"sysctl", "-qw", "net.ipv4.ip_forward=1"});
    restoreForwarding_ = true;
  }
  const std::string table = prefix_ + "_" + host;
  natTables_.push_back(table);
  output({"nft", "add", "table", "ip", table});
  output(
      {"nft", "add", "chain", "ip", table, "post", "{ type nat hook postrouting priority 100 ; }"});
  output({"nft", "add", "rule", "ip", table, "post", "ip", "saddr", hostAddr, "masquerade"});
}

void NetTopology::forwarding(const std::string& host) {
  run(host, {"sysctl", "-qw", "net.ipv4.ip_forward=1"});
}

void NetTopology::addHost(const std::string& host) {
  const std::string ns = prefix_ + "-" + host;
  quiet({"ip", "netns", "del", ns});
  output({"ip", "netns", "add", ns});
  hosts_[host] = ns;
  run(host, {"ip", "link", "set", "lo", "up"});
  // A namespace may pick only what the machine-wide allowed list has: add cubic there once.
  constexpr const char* kAllowed = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
  std::string allowed = readFile(kAllowed);
  if ((" " + allowed + " ").find(" cubic") == std::string::npos &&
      (" " + allowed).find(" cubic\n") == std::string::npos) {
    if (allowedCcSet_.empty()) allowedCcBefore_ = allowed;
    while (!allowed.empty() && allowed.back() == '\n')
      allowed.pop_back();
    output({"sysctl", "-qw", "net.ipv4.tcp_allowed_congestion_control=" + allowed + " cubic"});
    allowedCcSet_ = readFile(kAllowed);
  }
  run(host, {"sysctl", "-qw", "net.ipv4.tcp_congestion_control=cubic"});
}

void NetTopology::link(const std::string& a, const std::string& b, const LinkOptions& options) {
  const int n = static_cast<int>(links_.size());
  Link l;
  l.a = a;
  l.b = b;
  // One /30 per link: 198.18.<n>.1 and .2.
  l.addrA = "198.18." + std::to_string(n) + ".1";
  l.addrB = "198.18." + std::to_string(n) + ".2";
  l.devA = ("v" + std::to_string(n) + "-" + b).substr(0, 15);
  l.devB = ("v" + std::to_string(n) + "-" + a).substr(0, 15);
  output({"ip", "link", "add", l.devA, "netns", ns(a), "type", "veth", "peer", "name", l.devB,
          "netns", ns(b)});
  for (const auto& [host, dev, addr] :
       {std::tuple{a, l.devA, l.addrA}, std::tuple{b, l.devB, l.addrB}}) {
    run(host, {"ip", "addr", "add", addr + "/30", "dev", dev});
    run(host, {"ip", "link", "set", dev, "mtu", std::to_string(options.mtu), "up"});
    // Without offloads tbf meters the packets that really go on the wire.
    run(host, {"ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"});
    if (!options.rate.empty())
      run(host, {"tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", options.rate, "burst",
                 burstFor(options.rate), "latency", "50ms"});
  }
  l.queue = 2 * n;
  if (options.delay.count() > 0 || options.lossPercent > 0) {
    for (const auto& [host, dev] : {std::pair{a, l.devA}, std::pair{b, l.devB}})
      run(host,
          {"iptables-legacy", "-t", "mangle", "-A", "PREROUTING", "-i", dev, "-j", "NFQUEUE",
           "--queue-num", std::to_string(dev == l.devA ? l.queue : l.queue + 1), "--queue-bypass"});
    startDelays(l, options.delay, options.lossPercent);
  }
  links_.push_back(l);
}

bool NetTopology::canDelay(std::string* why) {
  if (!fs::exists(buildDir() / "bin" / "imgpipe-link-delay")) {
    if (why) *why = "imgpipe-link-delay was not built (libnetfilter-queue-dev missing)";
    return false;
  }
  SubprocessOptions o;
  o.argv = {"iptables-legacy", "--version"};
  if (runCommand(o).exitCode != 0) {
    if (why) *why = "no iptables-legacy (the NFQUEUE target)";
    return false;
  }
  return true;
}

void NetTopology::startDelays(const Link& l, std::chrono::milliseconds delay, double lossPercent) {
  char loss[32];
  std::snprintf(loss, sizeof loss, "%g", lossPercent);
  // Packets into a are held in a's namespace, packets into b in b's: the receiving end.
  for (const auto& [host, dev, queue] :
       {std::tuple{l.a, l.devA, l.queue}, std::tuple{l.b, l.devB, l.queue + 1}}) {
    const fs::path base = fs::temp_directory_path() / (ns(host) + "-" + dev);
    const fs::path params = base.string() + ".delay.params";
    std::ofstream(params) << delay.count() << " " << loss << "\n";
    auto& slot = delays_[ns(host) + "/" + dev];
    if (slot) {
      // Changed in place: the delayer keeps the queue and what it holds.
      slot->signal(SIGHUP);
      continue;
    }
    slot = std::make_unique<Daemon>(
        inHost(host, {(buildDir() / "bin" / "imgpipe-link-delay").string(), std::to_string(queue),
                      std::to_string(delay.count()), loss, params.string()}),
        base.string() + ".delay.log");
    if (!slot->waitForLog("ready", std::chrono::seconds(10)))
      throw Error("imgpipe-link-delay did not start on " + dev + ": " + slot->log());
  }
}

void NetTopology::impair(const std::string& a, const std::string& b,
                         std::chrono::milliseconds delay, double lossPercent) {
  const auto& l = findLink(a, b);
  if (!delays_.count(ns(l.a) + "/" + l.devA))
    throw std::invalid_argument("the link " + a + " - " + b +
                                " was made without delay or loss: nothing to change");
  startDelays(l, delay, lossPercent);
}

void NetTopology::addRoute(const std::string& host, const std::string& destHost,
                           const std::string& destPeer, const std::string& gateway) {
  Route r{host, address(destHost, destPeer), address(gateway, host)};
  run(host, {"ip", "route", "replace", r.dest + "/32", "via", r.gateway});
  routes_.push_back(r);
}

const NetTopology::Link& NetTopology::findLink(const std::string& a, const std::string& b) const {
  for (const auto& l : links_)
    if ((l.a == a && l.b == b) || (l.a == b && l.b == a)) return l;
  throw std::invalid_argument("no link between " + a + " and " + b);
}

std::string NetTopology::address(const std::string& host, const std::string& peer) const {
  const auto& l = findLink(host, peer);
  return l.a == host ? l.addrA : l.addrB;
}

std::string NetTopology::device(const std::string& host, const std::string& peer) const {
  const auto& l = findLink(host, peer);
  return l.a == host ? l.devA : l.devB;
}

void NetTopology::linkDown(const std::string& a, const std::string& b) {
  const auto& l = findLink(a, b);
  run(l.a, {"ip", "link", "set", l.devA, "down"});
  run(l.b, {"ip", "link", "set", l.devB, "down"});
}

void NetTopology::linkUp(const std::string& a, const std::string& b) {
  const auto& l = findLink(a, b);
  run(l.a, {"ip", "link", "set", l.devA, "up"});
  run(l.b, {"ip", "link", "set", l.devB, "up"});
  restoreRoutes();
}

void NetTopology::blackhole(const std::string& a, const std::string& b, bool on) {
  const auto& l = findLink(a, b);
  const char* verb = on ? "add" : "del";
  run(l.a, {"ip", "route", verb, "blackhole", l.addrB + "/32"});
  run(l.b, {"ip", "route", verb, "blackhole", l.addrA + "/32"});
}

void NetTopology::restoreRoutes() {
  for (const auto& r : routes_) {
    SubprocessOptions o;
    o.argv = inHost(r.host, {"ip", "route", "replace", r.dest + "/32", "via", r.gateway});
    (void)runCommand(o);
  }
}

LinkCounters NetTopology::counters(const std::string& host, const std::string& peer) const {
  auto text = output(inHost(host, {"ip", "-s", "-j", "link", "show", "dev", device(host, peer)}));
  auto j = nlohmann::json::parse(text);
  const auto& s = j.at(0).at("stats64");
  LinkCounters c;
  c.txBytes = s.at("tx").at("bytes").get<std::uint64_t>();
  c.rxBytes = s.at("rx").at("bytes").get<std::uint64_t>();
  c.txPackets = s.at("tx").at("packets").get<std::uint64_t>();
  c.rxPackets = s.at("rx").at("packets").get<std::uint64_t>();
  return c;
}

std::vector<std::string> NetTopology::inHost(const std::string& host,
                                             std::vector<std::string> argv) const {
  std::vector<std::string> out{"ip", "netns", "exec", ns(host)};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

void NetTopology::run(const std::string& host, std::vector<std::string> argv) const {
  output(inHost(host, std::move(argv)));
}

fs::path transferTool() {
  return buildDir() / "bin" / "imgpipe-transfer";
}

}  // namespace imgpipe::test
