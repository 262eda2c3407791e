// bench/transfer: imgpipe's transfer plane against rsync over ssh, side by side, on a
// build -> relay -> ctrl topology of network namespaces with tbf-limited links (40 Mbit/s by
// default), moving a real ~200 MiB compressed qcow2 and a rebuilt version of it
// (bench/transfer/make-images.sh makes and caches them).
//
//   transfer [--images DIR] [--rate 40mbit] [--mtu 1500] [--outage-at 15] [--outage 40]
//            [--only one_hop,two_hop,outage,delta,loopback,wan,wan_burst,wan_outage]
//            [--json FILE] [--wan-rtt 100,300] [--wan-loss 0.5,2] [--wan-rate 20mbit]
//            [--wan-size 160] [--wan-cap 150] [--burst 60] [--event-size 256]
//
// The WAN matrix (`wan`) runs each (round trip, loss) profile on links that hold every packet
// for half the round trip and drop the given share, each way (imgpipe-link-delay: NFQUEUE, as
// this kernel has no netem), every host at cubic, the default of the hosts users run: imgpipe
// as configured (BBR on its own connections), imgpipe told to keep the host's default
// (`congestion: system`), and rsync over ssh, on one hop; imgpipe also over two hops
// cut-through. The file is random bytes (a compressed image does not compress further). A run
// that has not finished after --wan-cap seconds is stopped and its goodput taken from the bytes
// the sender put on the wire by then (an upper bound, marked "<=" in the table).
//
// Wire bytes are read from the veth's counters (ip -s link) on the sending end of the link: the
// bytes of every frame in the data direction (payload, TCP/IP and Ethernet headers,
// retransmissions, and anything sent twice). Reverse-direction bytes (ACKs, requests) are
// reported separately.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "tests/support/netns.h"

using namespace imgpipe;
using namespace imgpipe::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string images = "/var/cache/imgpipe-bench";
  std::string rate = "40mbit";
  int mtu = 1500;
  double outageAt = 15;
  double outage = 40;
  std::string only;
  std::string json;
  bool keep = false;
  std::string wanRtt = "100,300";  // ms, round trip
  std::string wanLoss = "0.5,2";   // percent, each way
  std::string wanRate = "20mbit";
  int wanSizeMiB = 160;    // a compressed image's size; startup costs ~5 s at 300 ms
  double wanCap = 150;     // seconds
  int burstS = 60;         // wan_burst: how long the loss stays at 10 %
  int eventSizeMiB = 256;  // wan_burst, wan_outage: still moving 30 s after the recovery
};

std::vector<std::string> splitList(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// A field of imgpipe-transfer fetch's output ("reconnects 0").
std::string outputField(const std::string& out, const std::string& key) {
  auto p = out.find("\n" + key + " ");
  if (p == std::string::npos)
    p = out.starts_with(key + " ") ? 0 : std::string::npos;
  else
    ++p;
  if (p == std::string::npos) return "";
  p += key.size() + 1;
  return out.substr(p, out.find('\n', p) - p);
}

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double rateBitsPerSecond(const std::string& rate) {
  double v = std::stod(rate);
  if (rate.find("gbit") != std::string::npos) return v * 1e9;
  if (rate.find("mbit") != std::string::npos) return v * 1e6;
  if (rate.find("kbit") != std::string::npos) return v * 1e3;
  return v;
}

// Something done to a link during a run, at a second of the run.
struct LinkEvent {
  int at;  // seconds after the fetch started
  std::function<void(NetTopology&)> apply;
};

struct Imported {
  std::string id, digest;
};

class Bench {
 public:
  explicit Bench(Args args)
      : args_(std::move(args)), work_(fs::temp_directory_path(), "imgpipe-bench-") {
    tool_ = buildDir() / "bin" / "imgpipe-transfer";
    v1_ = fs::path(args_.images) / "v1.qcow2";
    v2_ = fs::path(args_.images) / "v2.qcow2";
    linkBits_ = rateBitsPerSecond(args_.rate);
    if (args_.keep) work_.keep();
    for (const char* h : {"build", "relay", "ctrl"})
      checkCommand({tool_.string(), "keygen", h, "--dir", (dir() / "keys").string()});
    // ssh keys for rsync: one client key, one host key.
    checkCommand(
        {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir() / "ssh_client").string()});
    checkCommand(
        {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir() / "ssh_host").string()});
  }

  bool want(const std::string& phase) const {
    if (args_.only.empty()) return true;
    return ("," + args_.only + ",").find("," + phase + ",") != std::string::npos;
  }

  void run();
  void report();

 private:
  fs::path dir() const { return work_.path(); }
  fs::path store(const std::string& name) const { return dir() / ("store-" + name); }
  fs::path key(const std::string& h) const { return dir() / "keys" / (h + ".key"); }
  fs::path pub(const std::string& h) const { return dir() / "keys" / (h + ".pub"); }

  std::unique_ptr<NetTopology> topology(bool twoHops, const LinkOptions* linkOptions = nullptr);
  Imported import(const fs::path& storeDir, const fs::path& file, const std::string& version);
  std::unique_ptr<NetDaemon> serve(NetTopology& net, const std::string& host,
                                   const std::string& peer, const fs::path& storeDir,
                                   const std::string& allow);
  std::vector<std::string> fetchArgv(const fs::path& storeDir, const std::string& from,
                                     const std::string& serverHost, const std::string& host,
                                     const Imported& a);
  std::unique_ptr<NetDaemon> sshd(NetTopology& net, const std::string& host,
                                  const std::string& peer);
  // rsync pushing `src` to `dst` on the host at `toAddr`, as operators run it on the sending host.
  std::vector<std::string> rsyncPush(const fs::path& src, const std::string& toAddr,
                                     const fs::path& dst, std::vector<std::string> extra = {});
  double timed(const std::vector<std::string>& argv, CommandResult* result = nullptr);
  std::uint64_t dataBytes(NetTopology& net, const std::string& sender,
                          const std::string& receiver) {
    return net.counters(sender, receiver).txBytes;
  }

  void oneHop();
  void twoHops();
  void outage();
  void delta();
  void loopback();
  void wan();
  void wanLossBurst();
  void wanOutage();
  struct EventRun {
    double seconds = 0;
    std::uint64_t fileBytes = 0;
    std::vector<std::uint64_t> perSecond;  // the sender's wire bytes at t = 0, 1, 2, ... s
    std::string stdoutText;
    LinkOptions link;
    // The sender's bytes between two seconds of the run, of the link rate.
    std::optional<double> linkUse(std::size_t from, std::size_t to, double rate) const;
  };
  EventRun fetchThroughEvents(const std::string& tag, const std::vector<LinkEvent>& events);
  void eventFigures(const std::string& prefix, const EventRun& run, int recoveredAt);
  struct Capped {
    double seconds = 0;
    std::uint64_t wireBytes = 0;  // data direction, on the sender's link
    bool finished = false;
    std::string stdoutText;
    // Of the link rate: the file's bytes when it finished, else the sender's wire bytes by the
    // cap (an upper bound).
    double goodput(double fileBytes, double rate) const {
      return (finished ? fileBytes : static_cast<double>(wireBytes)) * 8 / seconds / rate;
    }
  };
  Capped capped(NetTopology& net, const std::vector<std::string>& argv, const std::string& sender,
                const std::string& receiver);

  Args args_;
  TempDir work_;
  fs::path tool_, v1_, v2_;
  double linkBits_;
  std::uint64_t fileBytes_ = 0;
  double oneHopS_ = 0, rsyncOneHopS_ = 0;
  nlohmann::ordered_json figures_ = nlohmann::ordered_json::object();
  std::vector<std::string> notes_;
};

std::unique_ptr<NetTopology> Bench::topology(bool twoHops, const LinkOptions* linkOptions) {
  auto net = std::make_unique<NetTopology>();
  net->addHost("build");
  net->addHost("relay");
  const LinkOptions link = linkOptions ? *linkOptions : LinkOptions{args_.rate, args_.mtu};
  net->link("build", "relay", link);
  if (twoHops) {
    net->addHost("ctrl");
    net->link("relay", "ctrl", link);
  }
  return net;
}

Imported Bench::import(const fs::path& storeDir, const fs::path& file, const std::string& version) {
  SubprocessOptions o;
  o.argv = {tool_.string(), "import",      file.string(), "--store", storeDir.string(),
            "--name",       "bench-image", "--version",   version};
  o.captureStdout = true;
  auto out = checkCommand(o);
  Imported a{outputField(out, "artifact"), outputField(out, "manifest")};
  if (a.id.empty() || a.digest.empty())
    throw Error("imgpipe-transfer import printed no artifact and manifest: " + out);
  return a;
}

std::unique_ptr<NetDaemon> Bench::serve(NetTopology& net, const std::string& host,
                                        const std::string& peer, const fs::path& storeDir,
                                        const std::string& allow) {
  auto d = std::make_unique<NetDaemon>(
      net, host,
      std::vector<std::string>{tool_.string(), "serve", "--store", storeDir.string(), "--listen",
                               "tcp://" + net.address(host, peer) + ":7701", "--key",
                               key(host).string(), "--allow", pub(allow).string()},
      dir() / (host + "-serve.log"));
  if (!d->waitForLog("listening", std::chrono::seconds(10)))
    throw Error("artifact server did not start: " + d->log());
  return d;
}

std::vector<std::string> Bench::fetchArgv(const fs::path& storeDir, const std::string& from,
                                          const std::string& serverHost, const std::string& host,
                                          const Imported& a) {
  return {tool_.string(),
          "fetch",
          "--store",
          storeDir.string(),
          "--from",
          from,
          "--server-key",
          pub(serverHost).string(),
          "--key",
          key(host).string(),
          "--artifact",
          a.id,
          "--manifest-digest",
          a.digest};
}

std::unique_ptr<NetDaemon> Bench::sshd(NetTopology& net, const std::string& host,
                                       const std::string& peer) {
  const fs::path cfg = dir() / ("sshd-" + host + ".conf");
  fs::copy_file(dir() / "ssh_client.pub", dir() / "authorized_keys",
                fs::copy_options::overwrite_existing);
  std::ofstream(cfg) << "ListenAddress " << net.address(host, peer) << "\n"
                     << "Port 22\nHostKey " << (dir() / "ssh_host").string() << "\n"
                     << "AuthorizedKeysFile " << (dir() / "authorized_keys").string() << "\n"
                     << "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
                     << "PidFile none\n";
  // sshd wants /run/sshd: a private mount namespace with its own tmpfs /run.
  auto d = std::make_unique<NetDaemon>(
      net, host,
      std::vector<std::string>{"unshare", "-m", "--propagation", "private", "sh", "-c",
                               "mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec "
                               "/usr/sbin/sshd -D -e -f " +
                                   cfg.string()},
      dir() / ("sshd-" + host + ".log"));
  if (!d->waitForLog("Server listening", std::chrono::seconds(10)))
    throw Error("sshd did not start: " + d->log());
  return d;
}

std::string sshCommand(const fs::path& key) {
  return "ssh -i " + key.string() +
         " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "
         "-o ServerAliveInterval=10 -o LogLevel=ERROR";
}

std::vector<std::string> Bench::rsyncPush(const fs::path& src, const std::string& toAddr,
                                          const fs::path& dst, std::vector<std::string> extra) {
  std::vector<std::string> argv{"rsync", "-a", "--partial", "-e", sshCommand(dir() / "ssh_client")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(src.string());
  argv.push_back("root@" + toAddr + ":" + dst.string());
  return argv;
}

double Bench::timed(const std::vector<std::string>& argv, CommandResult* result) {
  SubprocessOptions o;
  o.argv = argv;
  o.captureStdout = true;
  o.tailLines = 50;
  o.timeout = std::chrono::seconds(1200);
  const auto t0 = Clock::now();
  auto r = runCommand(o);
  const double s = seconds(t0, Clock::now());
  if (r.exitCode != 0) throw CommandError(joinCommand(argv), r);
  if (result) *result = r;
  return s;
}

void requireSame(const fs::path& a, const fs::path& b) {
  SubprocessOptions o;
  o.argv = {"cmp", "-s", a.string(), b.string()};
  if (runCommand(o).exitCode != 0)
    throw Error(b.string() + " differs from " + a.string() + ": the transfer is broken");
}

void Bench::oneHop() {
  std::cerr << "== one hop (build -> relay, " << args_.rate << ")\n";
  auto net = topology(false);
  const std::string from = "tcp://" + net->address("build", "relay") + ":7701";
  auto a = import(store("build-1"), v2_, "2");
  {
    auto server = serve(*net, "build", "relay", store("build-1"), "relay");
    const auto before = net->counters("build", "relay");
    oneHopS_ = timed(net->inHost("relay", fetchArgv(store("relay-1"), from, "build", "relay", a)));
    const auto after = net->counters("build", "relay");
    requireSame(v2_, store("relay-1") / "objects" / a.id / "data");
    figures_["one_hop_s"] = oneHopS_;
    figures_["one_hop_goodput_ratio"] = fileBytes_ * 8.0 / oneHopS_ / linkBits_;
    figures_["one_hop_wire_ratio"] = double(after.txBytes - before.txBytes) / fileBytes_;
    std::cerr << "   imgpipe " << oneHopS_ << " s\n";
  }
  auto ssh = sshd(*net, "relay", "build");
  fs::create_directories(dir() / "rsync-1");
  const auto before = net->counters("build", "relay");
  rsyncOneHopS_ = timed(
      net->inHost("build", rsyncPush(v2_, net->address("relay", "build"), dir() / "rsync-1/")));
  const auto after = net->counters("build", "relay");
  requireSame(v2_, dir() / "rsync-1" / v2_.filename());
  figures_["rsync_one_hop_s"] = rsyncOneHopS_;
  figures_["rsync_one_hop_goodput_ratio"] = fileBytes_ * 8.0 / rsyncOneHopS_ / linkBits_;
  figures_["rsync_one_hop_wire_ratio"] = double(after.txBytes - before.txBytes) / fileBytes_;
  std::cerr << "   rsync " << rsyncOneHopS_ << " s\n";
}

void Bench::twoHops() {
  std::cerr << "== two hops (build -> relay -> ctrl)\n";
  auto net = topology(true);
  auto a = import(store("build-2"), v2_, "2");
  {
    auto server = serve(*net, "build", "relay", store("build-2"), "relay");
    const auto t0 = Clock::now();
    NetDaemon relay(*net, "relay",
                    {tool_.string(), "relay", "--store", store("relay-2").string(), "--listen",
                     "tcp://" + net->address("relay", "ctrl") + ":7701", "--key",
                     key("relay").string(), "--allow", pub("ctrl").string(), "--from",
                     "tcp://" + net->address("build", "relay") + ":7701", "--server-key",
                     pub("build").string(), "--artifact", a.id, "--manifest-digest", a.digest},
                    dir() / "relay-2.log");
    const std::string from = "tcp://" + net->address("relay", "ctrl") + ":7701";
    // The controller's fetch starts with the relay's: it waits ("waiting for upstream") until
    // the relay has the manifest, then takes every chunk as it lands there.
    timed(net->inHost("ctrl", fetchArgv(store("ctrl-2"), from, "relay", "ctrl", a)));
    const double t = seconds(t0, Clock::now());
    requireSame(v2_, store("ctrl-2") / "objects" / a.id / "data");
    figures_["two_hop_s"] = t;
    if (oneHopS_ > 0) figures_["two_hop_time_ratio"] = t / oneHopS_;
    std::cerr << "   imgpipe " << t << " s\n";
  }
  auto ssh1 = sshd(*net, "relay", "build");
  auto ssh2 = sshd(*net, "ctrl", "relay");
  fs::create_directories(dir() / "rsync-2r");
  fs::create_directories(dir() / "rsync-2c");
  // Store and forward, as operators do it: to the relay, then from the relay.
  double t = timed(
      net->inHost("build", rsyncPush(v2_, net->address("relay", "build"), dir() / "rsync-2r/")));
  t += timed(net->inHost("relay", rsyncPush(dir() / "rsync-2r" / v2_.filename(),
                                            net->address("ctrl", "relay"), dir() / "rsync-2c/")));
  requireSame(v2_, dir() / "rsync-2c" / v2_.filename());
  figures_["rsync_two_hop_s"] = t;
  if (rsyncOneHopS_ > 0) figures_["rsync_two_hop_time_ratio"] = t / rsyncOneHopS_;
  std::cerr << "   rsync " << t << " s\n";
}

// Runs `argv` in the background, takes the link down at `at` for `length`, and returns the total
// time and the bytes the sender put on the wire.
std::pair<double, std::uint64_t> withOutage(NetTopology& net, const std::vector<std::string>& argv,
                                            double at, double length) {
  SubprocessOptions o;
  o.argv = argv;
  o.captureStdout = true;
  o.tailLines = 50;
  o.timeout = std::chrono::seconds(1200);
  const auto before = net.counters("build", "relay");
  const auto t0 = Clock::now();
  Subprocess p(std::move(o));
  std::jthread flapper([&] {
    std::this_thread::sleep_until(t0 + std::chrono::duration<double>(at));
    net.linkDown("build", "relay");
    std::this_thread::sleep_until(t0 + std::chrono::duration<double>(at + length));
    net.linkUp("build", "relay");
  });
  auto r = p.wait();
  const double t = seconds(t0, Clock::now());
  flapper.join();
  if (r.exitCode != 0) throw CommandError(joinCommand(argv), r);
  const auto after = net.counters("build", "relay");
  return {t, after.txBytes - before.txBytes};
}

void Bench::outage() {
  std::cerr << "== outage of " << args_.outage << " s at t=" << args_.outageAt << " s\n";
  auto net = topology(false);
  const double bound = fileBytes_ * 8.0 / linkBits_ + args_.outage;
  figures_["outage_bound_s"] = bound;
  auto a = import(store("build-3"), v2_, "2");
  {
    auto server = serve(*net, "build", "relay", store("build-3"), "relay");
    const std::string from = "tcp://" + net->address("build", "relay") + ":7701";
    auto [t, wire] = withOutage(
        *net, net->inHost("relay", fetchArgv(store("relay-3"), from, "build", "relay", a)),
        args_.outageAt, args_.outage);
    requireSame(v2_, store("relay-3") / "objects" / a.id / "data");
    figures_["outage_total_s"] = t;
    figures_["outage_wire_ratio"] = double(wire) / fileBytes_;
    if (figures_.contains("one_hop_wire_ratio"))
      figures_["outage_wire_vs_clean"] =
          double(wire) / fileBytes_ / figures_["one_hop_wire_ratio"].get<double>();
    std::cerr << "   imgpipe " << t << " s, " << wire << " bytes\n";
  }
  auto ssh = sshd(*net, "relay", "build");
  fs::create_directories(dir() / "rsync-3");
  // The operators' retry loop on the build host (../shared/notes: --timeout=20 recovers
  // fastest of the settings measured there).
  std::vector<std::string> loop{"sh", "-c", "until \"$@\"; do sleep 1; done", "sh"};
  for (auto& x :
       rsyncPush(v2_, net->address("relay", "build"), dir() / "rsync-3/", {"--timeout=20"}))
    loop.push_back(x);
  auto [t, wire] = withOutage(*net, net->inHost("build", loop), args_.outageAt, args_.outage);
  requireSame(v2_, dir() / "rsync-3" / v2_.filename());
  figures_["rsync_outage_total_s"] = t;
  figures_["rsync_outage_wire_ratio"] = double(wire) / fileBytes_;
  if (figures_.contains("rsync_one_hop_wire_ratio"))
    figures_["rsync_outage_wire_vs_clean"] =
        double(wire) / fileBytes_ / figures_["rsync_one_hop_wire_ratio"].get<double>();
  std::cerr << "   rsync " << t << " s, " << wire << " bytes\n";
}

void Bench::delta() {
  std::cerr << "== delta (relay holds version 1, fetches version 2)\n";
  auto net = topology(false);
  import(store("build-4"), v1_, "1");
  auto a = import(store("build-4"), v2_, "2");
  import(store("relay-4"), v1_, "1");
  {
    auto server = serve(*net, "build", "relay", store("build-4"), "relay");
    const std::string from = "tcp://" + net->address("build", "relay") + ":7701";
    const auto before = net->counters("build", "relay");
    CommandResult r;
    const double t =
        timed(net->inHost("relay", fetchArgv(store("relay-4"), from, "build", "relay", a)), &r);
    const auto after = net->counters("build", "relay");
    requireSame(v2_, store("relay-4") / "objects" / a.id / "data");
    if (r.stdoutText.find("via delta") == std::string::npos)
      notes_.push_back("imgpipe did not use a delta: " + r.stdoutText);
    // Both directions: a delta exchange may upload a signature.
    const auto wire = (after.txBytes - before.txBytes) + (after.rxBytes - before.rxBytes);
    figures_["delta_wire_bytes"] = wire;
    figures_["delta_s"] = t;
    std::cerr << "   imgpipe " << t << " s, " << wire << " bytes\n";
  }
  auto ssh = sshd(*net, "relay", "build");
  fs::create_directories(dir() / "rsync-4");
  // rsync's basis: the old version under the new one's name, as an operator would stage it.
  fs::copy_file(v1_, dir() / "rsync-4" / v2_.filename());
  const auto before = net->counters("build", "relay");
  const double t = timed(
      net->inHost("build", rsyncPush(v2_, net->address("relay", "build"), dir() / "rsync-4/")));
  const auto after = net->counters("build", "relay");
  requireSame(v2_, dir() / "rsync-4" / v2_.filename());
  const auto wire = (after.txBytes - before.txBytes) + (after.rxBytes - before.rxBytes);
  figures_["rsync_delta_wire_bytes"] = wire;
  figures_["rsync_delta_s"] = t;
  std::cerr << "   rsync " << t << " s, " << wire << " bytes\n";
}

void Bench::loopback() {
  std::cerr << "== unshaped loopback (one namespace, 127.0.0.1)\n";
  NetTopology net;
  net.addHost("lo");
  auto a = import(store("lo-src"), v2_, "2");
  NetDaemon server(
      net, "lo",
      {tool_.string(), "serve", "--store", store("lo-src").string(), "--listen",
       "tcp://127.0.0.1:7701", "--key", key("build").string(), "--allow", pub("relay").string()},
      dir() / "lo-serve.log");
  if (!server.waitForLog("listening", std::chrono::seconds(10)))
    throw Error("artifact server did not start: " + server.log());
  std::vector<double> rates;
  for (int i = 0; i < 3; ++i) {
    const fs::path dst = store("lo-dst-" + std::to_string(i));
    const double t =
        timed(net.inHost("lo", fetchArgv(dst, "tcp://127.0.0.1:7701", "build", "relay", a)));
    requireSame(v2_, dst / "objects" / a.id / "data");
    rates.push_back(fileBytes_ / t / 1e6);
    fs::remove_all(dst);
  }
  std::sort(rates.begin(), rates.end());
  figures_["loopback_MBps"] = rates.back();
  figures_["loopback_MBps_median"] = rates[1];
  std::cerr << "   imgpipe best " << rates.back() << " MB/s, median " << rates[1] << "\n";
  // rsync over ssh on the same loopback, for the table.
  NetTopology net2;  // fresh namespace: sshd binds 127.0.0.1:22 there
  net2.addHost("lo");
  const fs::path cfg = dir() / "sshd-lo.conf";
  fs::copy_file(dir() / "ssh_client.pub", dir() / "authorized_keys",
                fs::copy_options::overwrite_existing);
  std::ofstream(cfg) << "ListenAddress 127.0.0.1\nPort 22\nHostKey "
                     << (dir() / "ssh_host").string() << "\nAuthorizedKeysFile "
                     << (dir() / "authorized_keys").string()
                     << "\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
                     << "PidFile none\n";
  NetDaemon ssh(
      net2, "lo",
      {"unshare", "-m", "--propagation", "private", "sh", "-c",
       "mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f " +
           cfg.string()},
      dir() / "sshd-lo.log");
  if (!ssh.waitForLog("Server listening", std::chrono::seconds(10)))
    throw Error("sshd did not start: " + ssh.log());
  fs::create_directories(dir() / "rsync-lo");
  const double t = timed(net2.inHost("lo", rsyncPush(v2_, "127.0.0.1", dir() / "rsync-lo/")));
  figures_["rsync_loopback_MBps"] = fileBytes_ / t / 1e6;
  std::cerr << "   rsync " << fileBytes_ / t / 1e6 << " MB/s\n";
}

Bench::Capped Bench::capped(NetTopology& net, const std::vector<std::string>& argv,
                            const std::string& sender, const std::string& receiver) {
  SubprocessOptions o;
  o.argv = argv;
  o.captureStdout = true;
  o.tailLines = 50;
  o.timeout = std::chrono::milliseconds(static_cast<long>(args_.wanCap * 1000));
  const auto before = net.counters(sender, receiver);
  const auto t0 = Clock::now();
  auto r = runCommand(o);
  Capped c;
  c.seconds = seconds(t0, Clock::now());
  c.wireBytes = net.counters(sender, receiver).txBytes - before.txBytes;
  c.finished = !r.timedOut;
  c.stdoutText = r.stdoutText;
  if (!r.timedOut && r.exitCode != 0) throw CommandError(joinCommand(argv), r);
  return c;
}

void Bench::wan() {
  std::string why;
  if (!NetTopology::canDelay(&why)) throw Error("the WAN matrix cannot run: " + why);
  const fs::path file = dir() / "wan.bin";
  checkCommand({"dd", "if=/dev/urandom", "of=" + file.string(), "bs=1M",
                "count=" + std::to_string(args_.wanSizeMiB), "status=none"});
  const double bytes = static_cast<double>(fs::file_size(file));
  const double rate = rateBitsPerSecond(args_.wanRate);
  figures_["wan_link_rate_bps"] = rate;
  figures_["wan_file_bytes"] = bytes;
  // imgpipe told to leave the host's default congestion control (cubic here).
  const fs::path systemCc = dir() / "wan-system-cc.yaml";
  std::ofstream(systemCc) << "transfer:\n  congestion: system\n";
  int run = 0;
  for (const auto& rtt : splitList(args_.wanRtt)) {
    for (const auto& loss : splitList(args_.wanLoss)) {
      const std::string k = rtt + "_" + loss;
      std::cerr << "== WAN " << args_.wanRate << ", rtt " << rtt << " ms, loss " << loss
                << " % each way, cubic hosts\n";
      LinkOptions link{args_.wanRate, args_.mtu};
      link.delay = std::chrono::milliseconds(std::stoi(rtt) / 2);
      link.lossPercent = std::stod(loss);
      const std::string tag = "wan" + std::to_string(run++);
      // One hop, as configured, then with the host's default.
      {
        auto net = topology(false, &link);
        auto a = import(store(tag + "-build"), file, "1");
        const std::string from = "tcp://" + net->address("build", "relay") + ":7701";
        auto server = serve(*net, "build", "relay", store(tag + "-build"), "relay");
        auto c = capped(
            *net, net->inHost("relay", fetchArgv(store(tag + "-relay"), from, "build", "relay", a)),
            "build", "relay");
        if (c.finished) requireSame(file, store(tag + "-relay") / "objects" / a.id / "data");
        const double goodput = c.goodput(bytes, rate);
        figures_["wan_goodput_ratio_" + k] = goodput;
        figures_["wan_finished_" + k] = c.finished;
        figures_["wan_one_hop_s_" + k] = c.seconds;
        const auto reconnects = outputField(c.stdoutText, "reconnects");
        if (!reconnects.empty()) figures_["wan_reconnects_" + k] = std::stoi(reconnects);
        const auto rttMs = outputField(c.stdoutText, "rtt_ms");
        if (!rttMs.empty()) figures_["wan_measured_rtt_ms_" + k] = std::stod(rttMs);
        std::cerr << "   imgpipe " << c.seconds << " s" << (c.finished ? "" : " (stopped)")
                  << ", goodput " << goodput << " of the link, reconnects "
                  << (reconnects.empty() ? "?" : reconnects) << ", congestion "
                  << outputField(c.stdoutText, "congestion") << "\n";
        if (server->log().find("connections use the host's default") != std::string::npos)
          notes_.push_back("WAN " + k +
                           ": the artifact server could not set its congestion "
                           "control: " +
                           server->log());
      }
      {
        auto net = topology(false, &link);
        auto a = import(store(tag + "-cbuild"), file, "1");
        const std::string from = "tcp://" + net->address("build", "relay") + ":7701";
        NetDaemon server(*net, "build",
                         {tool_.string(), "serve", "--store", store(tag + "-cbuild").string(),
                          "--listen", from, "--key", key("build").string(), "--allow",
                          pub("relay").string(), "--config", systemCc.string()},
                         dir() / (tag + "-cserve.log"));
        if (!server.waitForLog("listening", std::chrono::seconds(10)))
          throw Error("artifact server did not start: " + server.log());
        auto argv = fetchArgv(store(tag + "-crelay"), from, "build", "relay", a);
        argv.insert(argv.end(), {"--config", systemCc.string()});
        auto c = capped(*net, net->inHost("relay", argv), "build", "relay");
        const double goodput = c.goodput(bytes, rate);
        figures_["wan_system_cc_goodput_ratio_" + k] = goodput;
        figures_["wan_system_cc_finished_" + k] = c.finished;
        const auto reconnects = outputField(c.stdoutText, "reconnects");
        if (!reconnects.empty()) figures_["wan_system_cc_reconnects_" + k] = std::stoi(reconnects);
        std::cerr << "   imgpipe (congestion: system) " << c.seconds << " s"
                  << (c.finished ? "" : " (stopped)") << ", goodput " << goodput << "\n";
      }
      // Two hops, cut-through: the controller's fetch takes chunks as they land at the relay.
      {
        auto net = topology(true, &link);
        auto a = import(store(tag + "-2build"), file, "1");
        auto server = serve(*net, "build", "relay", store(tag + "-2build"), "relay");
        const auto t0 = Clock::now();
        NetDaemon relay(*net, "relay",
                        {tool_.string(), "relay", "--store", store(tag + "-2relay").string(),
                         "--listen", "tcp://" + net->address("relay", "ctrl") + ":7701", "--key",
                         key("relay").string(), "--allow", pub("ctrl").string(), "--from",
                         "tcp://" + net->address("build", "relay") + ":7701", "--server-key",
                         pub("build").string(), "--artifact", a.id, "--manifest-digest", a.digest},
                        dir() / (tag + "-relay.log"));
        const std::string from = "tcp://" + net->address("relay", "ctrl") + ":7701";
        auto c = capped(
            *net, net->inHost("ctrl", fetchArgv(store(tag + "-2ctrl"), from, "relay", "ctrl", a)),
            "relay", "ctrl");
        const double t = seconds(t0, Clock::now());
        if (c.finished) {
          requireSame(file, store(tag + "-2ctrl") / "objects" / a.id / "data");
          figures_["wan_two_hop_s_" + k] = t;
          if (figures_["wan_finished_" + k].get<bool>())
            figures_["wan_two_hop_ratio_" + k] = t / figures_["wan_one_hop_s_" + k].get<double>();
        }
        std::cerr << "   imgpipe two hops " << t << " s" << (c.finished ? "" : " (stopped)")
                  << "\n";
      }
      // rsync over ssh, pushed from the build host, as operators run it.
      {
        auto net = topology(false, &link);
        auto ssh = sshd(*net, "relay", "build");
        fs::create_directories(dir() / (tag + "-rsync"));
        auto c = capped(*net,
                        net->inHost("build", rsyncPush(file, net->address("relay", "build"),
                                                       dir() / (tag + "-rsync/"))),
                        "build", "relay");
        const double goodput = c.goodput(bytes, rate);
        figures_["rsync_wan_goodput_ratio_" + k] = goodput;
        figures_["rsync_wan_finished_" + k] = c.finished;
        std::cerr << "   rsync " << c.seconds << " s" << (c.finished ? "" : " (stopped)")
                  << ", goodput " << goodput << "\n";
      }
    }
  }
}

// One hop at 100 ms and 0.5 % loss each way, on which something happens: the loss jumps to 10 %
// for a minute (`wan_burst`), or the link carries nothing for 30 s (`wan_outage`). The fetch must
// run near the link rate again within 10 s of the recovery and receive no chunk twice. The
// sender's wire counter is sampled every second; its rate 10-20 s after the recovery is the
// "link use" reported (the sender's bytes, retransmissions included, as the loss happens at the
// receiver). `chunk_bytes` of the fetch, over the file's size, is what the application received:
// 1.000 when nothing was sent again.
Bench::EventRun Bench::fetchThroughEvents(const std::string& tag,
                                          const std::vector<LinkEvent>& events) {
  std::string why;
  if (!NetTopology::canDelay(&why)) throw Error("the WAN event runs cannot run: " + why);
  const fs::path file = dir() / "events.bin";
  if (!fs::exists(file))
    checkCommand({"dd", "if=/dev/urandom", "of=" + file.string(), "bs=1M",
                  "count=" + std::to_string(args_.eventSizeMiB), "status=none"});
  LinkOptions link{args_.wanRate, args_.mtu};
  link.delay = std::chrono::milliseconds(50);
  link.lossPercent = 0.5;
  auto net = topology(false, &link);
  auto a = import(store(tag + "-build"), file, "1");
  auto server = serve(*net, "build", "relay", store(tag + "-build"), "relay");
  const std::string from = "tcp://" + net->address("build", "relay") + ":7701";
  SubprocessOptions o;
  o.argv = net->inHost("relay", fetchArgv(store(tag + "-relay"), from, "build", "relay", a));
  o.captureStdout = true;
  o.tailLines = 50;
  o.timeout = std::chrono::seconds(900);
  EventRun run;
  run.link = link;
  const auto t0 = Clock::now();
  Subprocess p(std::move(o));
  std::atomic<bool> done{false};
  std::jthread sampler([&] {
    for (int i = 0; !done; ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::seconds(i));
      for (const auto& e : events)
        if (e.at == i) e.apply(*net);
      run.perSecond.push_back(net->counters("build", "relay").txBytes);
    }
  });
  auto r = p.wait();
  done = true;
  sampler.join();
  run.seconds = seconds(t0, Clock::now());
  if (r.exitCode != 0) throw CommandError("the fetch through the " + tag, r);
  requireSame(file, store(tag + "-relay") / "objects" / a.id / "data");
  run.fileBytes = fs::file_size(file);
  run.stdoutText = r.stdoutText;
  return run;
}

std::optional<double> Bench::EventRun::linkUse(std::size_t from, std::size_t to,
                                               double rate) const {
  if (perSecond.size() <= to) return std::nullopt;
  return (perSecond[to] - perSecond[from]) * 8.0 / double(to - from) / rate;
}

void Bench::eventFigures(const std::string& prefix, const EventRun& run, int recoveredAt) {
  const double rate = rateBitsPerSecond(args_.wanRate);
  figures_[prefix + "_total_s"] = run.seconds;
  figures_[prefix + "_goodput_ratio"] = run.fileBytes * 8.0 / run.seconds / rate;
  auto series = nlohmann::ordered_json::array();
  for (size_t i = 1; i < run.perSecond.size(); ++i)
    series.push_back(std::round((run.perSecond[i] - run.perSecond[i - 1]) * 8.0 / rate * 100) /
                     100);
  figures_[prefix + "_link_use_per_second"] = series;
  const auto at = static_cast<std::size_t>(recoveredAt);
  if (auto v = run.linkUse(at + 10, at + 20, rate)) figures_[prefix + "_ratio_after_10s"] = *v;
  if (auto v = run.linkUse(at + 20, at + 30, rate)) figures_[prefix + "_ratio_after_20s"] = *v;
  const auto reconnects = outputField(run.stdoutText, "reconnects");
  if (!reconnects.empty()) figures_[prefix + "_reconnects"] = std::stoi(reconnects);
  const auto chunkBytes = outputField(run.stdoutText, "chunk_bytes");
  if (!chunkBytes.empty())
    figures_[prefix + "_chunk_bytes_ratio"] = std::stod(chunkBytes) / double(run.fileBytes);
  std::cerr << "   imgpipe " << run.seconds << " s, reconnects " << reconnects
            << ", 10-20 s after recovery " << run.linkUse(at + 10, at + 20, rate).value_or(-1)
            << ", chunk bytes / file " << (chunkBytes.empty() ? "?" : chunkBytes) << "/"
            << run.fileBytes << "\n";
}

void Bench::wanLossBurst() {
  const int from = 5, to = from + args_.burstS;
  std::cerr << "== WAN loss burst: " << args_.wanRate << ", rtt 100 ms, loss 0.5 % -> 10 % for "
            << args_.burstS << " s at t=" << from << " s -> 0.5 %\n";
  const std::chrono::milliseconds delay(50);
  auto run = fetchThroughEvents(
      "burst", {{from, [&](NetTopology& n) { n.impair("build", "relay", delay, 10); }},
                {to, [&](NetTopology& n) { n.impair("build", "relay", delay, 0.5); }}});
  if (auto v = run.linkUse(from + 15, to - 5, rateBitsPerSecond(args_.wanRate)))
    figures_["wan_burst_ratio_during"] = *v;
  eventFigures("wan_burst", run, to);
}

void Bench::wanOutage() {
  const int from = 20, to = from + static_cast<int>(args_.outage);
  std::cerr << "== WAN outage: " << args_.wanRate << ", rtt 100 ms, loss 0.5 %, nothing for "
            << args_.outage << " s at t=" << from << " s\n";
  auto run =
      fetchThroughEvents("outage", {{from, [](NetTopology& n) { n.linkDown("build", "relay"); }},
                                    {to, [](NetTopology& n) { n.linkUp("build", "relay"); }}});
  if (auto v = run.linkUse(from - 10, from, rateBitsPerSecond(args_.wanRate)))
    figures_["wan_outage_ratio_before"] = *v;
  eventFigures("wan_outage", run, to);
}

void Bench::run() {
  if (want("wan")) wan();
  if (want("wan_burst")) wanLossBurst();
  if (want("wan_outage")) wanOutage();
  // The WAN phases move random bytes; the others move the two real images.
  if (!want("one_hop") && !want("two_hop") && !want("outage") && !want("delta") &&
      !want("loopback"))
    return;
  if (!fs::exists(v1_) || !fs::exists(v2_)) {
    // Made once (a few minutes: debootstrap, two chroot builds, compaction) and cached.
    const fs::path script = fs::path(IMGPIPE_SOURCE_DIR) / "bench/transfer/make-images.sh";
    std::cerr << "== making the benchmark images with " << script.string() << "\n";
    SubprocessOptions o;
    o.argv = {script.string(), args_.images};
    o.onLine = [](std::string_view line) { std::cerr << "   " << line << "\n"; };
    o.timeout = std::chrono::minutes(30);
    checkCommand(o);
  }
  fileBytes_ = fs::file_size(v2_);
  if (want("one_hop")) oneHop();
  if (want("two_hop")) twoHops();
  if (want("outage")) outage();
  if (want("delta")) delta();
  if (want("loopback")) loopback();
}

void Bench::report() {
  auto num = [&](const char* key) -> std::optional<double> {
    if (!figures_.contains(key)) return std::nullopt;
    return figures_[key].get<double>();
  };
  auto cell = [](std::optional<double> v, const char* fmt) {
    if (!v) return std::string("-");
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, *v);
    return std::string(buf);
  };
  auto ratio = [&](const char* a, const char* b) -> std::optional<double> {
    auto x = num(a), y = num(b);
    if (!x || !y || *y == 0) return std::nullopt;
    return *x / *y;
  };
  struct Row {
    std::string name, imgpipe, rsync, ratio, target;
  };
  std::vector<Row> rows{
      {"one hop: time (s)", cell(num("one_hop_s"), "%.1f"), cell(num("rsync_one_hop_s"), "%.1f"),
       cell(ratio("one_hop_s", "rsync_one_hop_s"), "%.2f"), ""},
      {"one hop: goodput / link rate", cell(num("one_hop_goodput_ratio"), "%.3f"),
       cell(num("rsync_one_hop_goodput_ratio"), "%.3f"), "", ">= 0.95"},
      {"one hop: wire bytes / file", cell(num("one_hop_wire_ratio"), "%.3f"),
       cell(num("rsync_one_hop_wire_ratio"), "%.3f"), "", ""},
      {"two hops: time (s)", cell(num("two_hop_s"), "%.1f"), cell(num("rsync_two_hop_s"), "%.1f"),
       cell(ratio("two_hop_s", "rsync_two_hop_s"), "%.2f"), ""},
      {"two hops / one hop", cell(num("two_hop_time_ratio"), "%.3f"),
       cell(num("rsync_two_hop_time_ratio"), "%.3f"), "", "<= 1.05"},
      {"outage: total time (s)", cell(num("outage_total_s"), "%.1f"),
       cell(num("rsync_outage_total_s"), "%.1f"), "",
       "bound " + cell(num("outage_bound_s"), "%.1f") + " + 5"},
      {"outage: wire bytes / file", cell(num("outage_wire_ratio"), "%.3f"),
       cell(num("rsync_outage_wire_ratio"), "%.3f"), "", "<= 1.01"},
      {"outage: wire / clean run's wire", cell(num("outage_wire_vs_clean"), "%.3f"),
       cell(num("rsync_outage_wire_vs_clean"), "%.3f"), "", ""},
      {"delta: bytes on the wire", cell(num("delta_wire_bytes"), "%.0f"),
       cell(num("rsync_delta_wire_bytes"), "%.0f"),
       cell(ratio("delta_wire_bytes", "rsync_delta_wire_bytes"), "%.3f"), "<= 0.5"},
      {"loopback MB/s", cell(num("loopback_MBps"), "%.0f"),
       cell(num("rsync_loopback_MBps"), "%.0f"),
       cell(ratio("loopback_MBps", "rsync_loopback_MBps"), "%.1f"), ">= 250"},
  };
  for (const auto& rtt : splitList(args_.wanRtt))
    for (const auto& loss : splitList(args_.wanLoss)) {
      const std::string k = rtt + "_" + loss;
      if (!figures_.contains("wan_goodput_ratio_" + k)) continue;
      auto mark = [&](const std::string& finishedKey, std::optional<double> v) {
        auto text = cell(v, "%.3f");
        if (figures_.contains(finishedKey) && !figures_[finishedKey].get<bool>())
          text = "<=" + text;
        return text;
      };
      const auto name = "WAN " + rtt + " ms, " + loss + " %";
      rows.push_back(
          {name + ": goodput / link",
           mark("wan_finished_" + k, num(("wan_goodput_ratio_" + k).c_str())),
           mark("rsync_wan_finished_" + k, num(("rsync_wan_goodput_ratio_" + k).c_str())), "",
           ">= 0.85"});
      rows.push_back(
          {name + ": host default cc",
           mark("wan_system_cc_finished_" + k, num(("wan_system_cc_goodput_ratio_" + k).c_str())),
           "", "", ""});
      rows.push_back({name + ": two hops / one",
                      cell(num(("wan_two_hop_ratio_" + k).c_str()), "%.3f"), "", "", "<= 1.1"});
      rows.push_back(
          {name + ": reconnects", cell(num(("wan_reconnects_" + k).c_str()), "%.0f"), "", "", "0"});
    }
  for (const auto& [prefix, name] :
       {std::pair<std::string, std::string>{"wan_burst", "WAN loss burst"},
        {"wan_outage", "WAN outage"}}) {
    if (!figures_.contains(prefix + "_total_s")) continue;
    auto f = [&](const std::string& k) { return num((prefix + k).c_str()); };
    rows.push_back({name + ": goodput, whole run", cell(f("_goodput_ratio"), "%.3f"), "", "", ""});
    if (prefix == "wan_burst")
      rows.push_back({name + ": link use at 10 %", cell(f("_ratio_during"), "%.3f"), "", "", ""});
    else
      rows.push_back({name + ": link use before", cell(f("_ratio_before"), "%.3f"), "", "", ""});
    rows.push_back(
        {name + ": 10-20 s after", cell(f("_ratio_after_10s"), "%.3f"), "", "", ">= 0.85"});
    rows.push_back({name + ": 20-30 s after", cell(f("_ratio_after_20s"), "%.3f"), "", "", ""});
    rows.push_back(
        {name + ": chunk bytes / file", cell(f("_chunk_bytes_ratio"), "%.4f"), "", "", "1.0000"});
    rows.push_back({name + ": reconnects", cell(f("_reconnects"), "%.0f"), "", "",
                    prefix == "wan_burst" ? "0" : ""});
  }
  std::printf(
      "\nimgpipe transfer plane vs rsync over ssh — %s per link, MTU %d, %s (%llu bytes)\n\n",
      args_.rate.c_str(), args_.mtu, v2_.filename().c_str(),
      static_cast<unsigned long long>(fileBytes_));
  std::printf("| %-30s | %12s | %12s | %7s | %-14s |\n", "", "imgpipe", "rsync", "ratio", "target");
  std::printf("|%s|%s|%s|%s|%s|\n", std::string(32, '-').c_str(), std::string(14, '-').c_str(),
              std::string(14, '-').c_str(), std::string(9, '-').c_str(),
              std::string(16, '-').c_str());
  for (const auto& r : rows)
    std::printf("| %-30s | %12s | %12s | %7s | %-14s |\n", r.name.c_str(), r.imgpipe.c_str(),
                r.rsync.c_str(), r.ratio.c_str(), r.target.c_str());
  for (const auto& n : notes_)
    std::printf("\nnote: %s\n", n.c_str());
  if (!args_.json.empty()) {
    if (figures_.contains("delta_wire_bytes") && figures_.contains("rsync_delta_wire_bytes"))
      figures_["delta_wire_ratio"] = ratio("delta_wire_bytes", "rsync_delta_wire_bytes").value();
    figures_["link_rate_bps"] = linkBits_;
    figures_["mtu"] = args_.mtu;
    figures_["file_bytes"] = fileBytes_;
    std::ofstream(args_.json) << figures_.dump(2) << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"imgpipe transfer benchmark: imgpipe vs rsync over ssh on namespaced links"};
  Args args;
  app.add_option("--images", args.images, "directory with v1.qcow2 and v2.qcow2")
      ->capture_default_str();
  app.add_option("--rate", args.rate, "tbf rate of every link")->capture_default_str();
  app.add_option("--mtu", args.mtu, "MTU of every link")->capture_default_str();
  app.add_option("--outage-at", args.outageAt, "seconds into the transfer")->capture_default_str();
  app.add_option("--outage", args.outage, "length of the outage, seconds")->capture_default_str();
  app.add_option("--only", args.only,
                 "comma-separated: one_hop,two_hop,outage,delta,loopback,wan,wan_burst,wan_outage");
  app.add_option("--wan-rtt", args.wanRtt, "WAN round trips, ms, comma-separated")
      ->capture_default_str();
  app.add_option("--wan-loss", args.wanLoss, "WAN loss each way, %, comma-separated")
      ->capture_default_str();
  app.add_option("--wan-rate", args.wanRate, "tbf rate of the WAN links")->capture_default_str();
  app.add_option("--wan-size", args.wanSizeMiB, "MiB moved per WAN run")->capture_default_str();
  app.add_option("--wan-cap", args.wanCap, "seconds before a WAN run is stopped")
      ->capture_default_str();
  app.add_option("--burst", args.burstS, "seconds of 10 % loss in wan_burst")
      ->capture_default_str();
  app.add_option("--event-size", args.eventSizeMiB, "MiB moved by wan_burst and wan_outage")
      ->capture_default_str();
  app.add_option("--json", args.json, "also write the figures here as a flat JSON object");
  app.add_flag("--keep", args.keep, "keep the work directory (logs) for inspection");
  CLI11_PARSE(app, argc, argv);
  try {
    std::string why;
    if (!NetTopology::available(&why)) throw Error("cannot run: " + why);
    Bench bench(args);
    bench.run();
    bench.report();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench/transfer: " << e.what() << "\n";
    return 1;
  }
}
