#include "coordinator/cli/doctor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <zmq.hpp>

#include "common/agent/agent_config.h"
#include "common/file_util.h"
#include "common/net/authorized_keys.h"
#include "common/net/curve_keys.h"
#include "common/net/reactor.h"
#include "common/net/socket_monitor.h"
#include "common/net/zap_handler.h"
#include "common/probe_findings.h"
#include "common/subprocess.h"
#include "common/units.h"
#include "common/yaml_reader.h"
#include "coordinator/cli/client.h"
#include "coordinator/cli/commands.h"
#include "coordinator/config.h"
#include "protocol/codec.h"

namespace imgpipe::cli {
namespace {

enum class Status { ok, warn, fail };

struct Check {
  std::string name;
  Status status;
  std::string detail;
  std::string fix;
};

class Report {
 public:
  void add(std::string name, Status s, std::string detail, std::string fix = "") {
    checks_.push_back({std::move(name), s, std::move(detail), std::move(fix)});
  }
  bool failed() const {
    for (const auto& c : checks_)
      if (c.status == Status::fail) return true;
    return false;
  }
  void print(bool json) const {
    if (json) {
      auto arr = nlohmann::json::array();
      for (const auto& c : checks_)
        arr.push_back({{"check", c.name},
                       {"status", c.status == Status::ok     ? "ok"
                                  : c.status == Status::warn ? "warn"
                                                             : "fail"},
                       {"detail", c.detail},
                       {"fix", c.fix}});
      std::cout << arr.dump(2) << "\n";
      return;
    }
    for (const auto& c : checks_) {
      std::cout << (c.status == Status::ok     ? "ok    "
                    : c.status == Status::warn ? "warn  "
                                               : "FAIL  ")
                << c.name;
      if (!c.detail.empty()) std::cout << ": " << c.detail;
      std::cout << "\n";
      if (c.status != Status::ok && !c.fix.empty()) std::cout << "      fix: " << c.fix << "\n";
    }
  }

 private:
  std::vector<Check> checks_;
};

std::optional<std::string> which(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  p += ":/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= p.size()) {
    auto end = p.find(':', start);
    auto dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto candidate = std::filesystem::path(dir) / tool;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

std::filesystem::path binaryDir() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : self.parent_path();
}

// Installed side by side with this CLI (as in build/bin), else on the PATH.
std::optional<std::string> daemonBinary(const std::string& daemon) {
  std::string binary = (binaryDir() / daemon).string();
  if (::access(binary.c_str(), X_OK) == 0) return binary;
  return which(daemon);
}

CommandResult runDaemon(const std::string& binary, const std::string& config,
                        const std::string& flag) {
  SubprocessOptions o;
  o.argv = {binary, "--config", config, flag};
  o.timeout = std::chrono::seconds(30);
  return runCommand(o);
}

std::string joinTail(const CommandResult& res) {
  std::string out;
  for (const auto& l : res.tail)
    out += (out.empty() ? "" : " ") + l;
  return out;
}

// The daemon's own parser is the authority on its config. True when the config is valid.
bool checkConfigWithDaemon(Report& r, const std::string& daemon, const std::string& config) {
  auto binary = daemonBinary(daemon);
  if (!binary) {
    r.add("config " + config, Status::fail, daemon + " is not installed",
          "install the imgpipe package");
    return false;
  }
  auto res = runDaemon(*binary, config, "--check-config");
  if (res.exitCode == 0) {
    r.add("config " + config, Status::ok, "valid");
    return true;
  }
  r.add("config " + config, Status::fail, joinTail(res),
        "correct the file; the message names the line and field");
  return false;
}

// A glance agent is only as good as its Glance: the daemon authenticates and asks it, as it
// would for a registration.
void checkGlance(Report& r, const std::string& config) {
  auto binary = daemonBinary("imgpipe-agent-glance");
  if (!binary) return;
  auto res = runDaemon(*binary, config, "--probe");
  std::string said = joinTail(res);
  if (res.exitCode == 0) {
    // The daemon prints the probe's finding, then "<config>: OK".
    auto ok = said.rfind(' ' + config + ": OK");
    const std::string found = ok == std::string::npos ? said : said.substr(0, ok);
    if (found.find(kInsecureHttpWarning) != std::string::npos)
      r.add("glance", Status::warn, found,
            "serve Glance and Keystone over https:// and remove allow_insecure_http");
    else
      r.add("glance", Status::ok, found);
  } else {
    r.add("glance", Status::fail, said,
          "check the glance: section (endpoint, auth_url, credentials) and that this host "
          "reaches them: the message names the service and URL");
  }
}

void checkSecretKey(Report& r, const std::filesystem::path& key) {
  struct stat st {};
  if (::stat(key.c_str(), &st) != 0) {
    r.add("key " + key.string(), Status::fail, "missing",
          "imgpipe keygen " + key.stem().string() + " --dir " + key.parent_path().string() +
              ", then list the .pub in the coordinator's authorized_keys");
    return;
  }
  try {
    auto keys = net::loadSecretKey(key);
    r.add("key " + key.string(), Status::ok, "mode 0600, public key " + keys.publicKey);
  } catch (const Error& e) {
    r.add("key " + key.string(), Status::fail, e.what(), "chmod 600 " + key.string());
  }
}

void checkSpace(Report& r, const std::filesystem::path& dir, std::uint64_t want,
                const std::string& what) {
  std::error_code ec;
  auto probe = dir;
  while (!probe.empty() && !std::filesystem::exists(probe, ec))
    probe = probe.parent_path();
  if (probe.empty()) probe = "/";
  auto free = freeBytes(probe);
  r.add("disk " + dir.string(), free >= want ? Status::ok : Status::fail,
        formatBytes(free) + " free (" + what + " wants at least " + formatBytes(want) + ")",
        "free space on " + probe.string() + " or point the directory at a larger filesystem");
}

// A CURVE handshake and one round trip, with this host's key: tells "not authorized" from
// "unreachable", the two failures operators most often hit.
void checkCoordinator(Report& r, const std::string& endpoint, const std::string& serverKey,
                      const net::CurveKeyPair& keys, const std::string& role) {
  zmq::context_t ctx;
  net::Reactor reactor;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  net::configureCurveClient(s, keys.publicKey, keys.secretKey, serverKey);
  std::optional<std::string> authError;
  net::SocketMonitor monitor(ctx, reactor, s, [&](net::SocketMonitor::Event e, const std::string&) {
    if (e == net::SocketMonitor::Event::authFailed) authError = "the coordinator refused this key";
    if (e == net::SocketMonitor::Event::protocolFailed)
      authError = "CURVE handshake failed (wrong coordinator public key?)";
  });
  s.connect(endpoint);
  proto::EnvelopeBuilder b;
  if (role == "operator")
    b.body().initRequest().initKind().setAgents();
  else
    b.body().setHeartbeat();
  s.send(b.frame(), zmq::send_flags::dontwait);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool answered = false;
  while (!answered && !authError && std::chrono::steady_clock::now() < deadline) {
    reactor.runOnce(std::chrono::milliseconds(100));
    zmq::message_t m;
    answered = s.recv(m, zmq::recv_flags::dontwait).has_value();
  }
  const std::string name = "coordinator " + endpoint;
  if (answered)
    r.add(name, Status::ok, "reachable; key '" + keys.name + "' accepted");
  else if (authError)
    r.add(name, Status::fail, *authError,
          "add this line to the coordinator's authorized_keys: " + keys.name + " " + role + " " +
              keys.publicKey);
  else
    r.add(name, Status::fail, "no answer within 5 s",
          "check that the coordinator runs, the address and port, and the WireGuard link / "
          "firewall between");
}

void checkBuildHost(Report& r) {
  for (const auto& tool :
       {"qemu-img", "sgdisk", "growpart", "e2fsck", "resize2fs", "tune2fs", "losetup", "partx",
        "mount", "umount", "bwrap", "fstrim", "debootstrap", "skopeo", "umoci"}) {
    auto found = which(tool);
    r.add(std::string("tool ") + tool, found ? Status::ok : Status::fail,
          found ? *found : "not found",
          "apt-get install qemu-utils gdisk cloud-guest-utils e2fsprogs util-linux mount "
          "bubblewrap debootstrap skopeo umoci");
  }
  const bool nbd = std::filesystem::exists("/dev/nbd0");
  const bool loop = std::filesystem::exists("/dev/loop-control");
  if (nbd)
    r.add("disk attach", Status::ok, "kernel nbd (/dev/nbd0) with qemu-nbd");
  else if (loop)
    r.add("disk attach", Status::ok, "no nbd module: raw image on a loop device");
  else
    r.add("disk attach", Status::fail, "neither /dev/nbd0 nor /dev/loop-control",
          "modprobe nbd max_part=16 (or loop)");
  if (!nbd)
    r.add("nbd", Status::warn,
          "kernel nbd not loaded; builds use loop devices (costs temporary disk)",
          "modprobe nbd max_part=16");
  r.add("fuse", std::filesystem::exists("/dev/fuse") ? Status::ok : Status::warn,
        std::filesystem::exists("/dev/fuse") ? "/dev/fuse present" : "/dev/fuse missing",
        "modprobe fuse");
  auto qemu = which("qemu-system-x86_64");
  r.add("boot test", qemu ? Status::ok : Status::warn,
        qemu ? *qemu : "qemu-system-x86_64 not installed: boot tests cannot run",
        "apt-get install qemu-system-x86");
  const bool ovmf = std::filesystem::exists("/usr/share/OVMF/OVMF_CODE_4M.fd");
  r.add("boot test (uefi)", ovmf ? Status::ok : Status::warn,
        ovmf ? "OVMF firmware present" : "no OVMF firmware: images cannot be booted under UEFI",
        "apt-get install ovmf");
  if (::geteuid() != 0)
    r.add("privileges", Status::fail, "not root",
          "build agents run as root (see the systemd unit)");
}

}  // namespace

int cmdDoctor(const std::vector<std::string>& configsIn, const std::string& roleHint, bool json) {
  Report r;
  std::vector<std::string> configs = configsIn;
  if (configs.empty())
    for (const auto* f : {"coordinator.yaml", "agent-build.yaml", "agent-relay.yaml",
                          "agent-glance.yaml", "imgpipe.yaml"})
      if (std::filesystem::exists(std::filesystem::path("/etc/imgpipe") / f))
        configs.push_back((std::filesystem::path("/etc/imgpipe") / f).string());
  if (configs.empty())
    r.add("configs", Status::fail, "none found in /etc/imgpipe",
          "pass them: imgpipe doctor FILE...");

  for (const auto& config : configs) {
    const auto file = std::filesystem::path(config).filename().string();
    try {
      // What a file is: by its name (as deployed: coordinator.yaml, agent-ROLE.yaml), else by
      // its content, with --role naming an agent's role.
      std::string kind = file.rfind("coordinator", 0) == 0 ? "coordinator" : "";
      for (const auto* role : {"build", "relay", "glance"})
        if (file.find(std::string("agent-") + role) != std::string::npos) kind = role;
      if (kind.empty()) {
        auto doc = YamlReader::fromFile(config);
        if (doc.has("authorized_keys") || doc.has("topology"))
          kind = "coordinator";
        else if (doc.has("name"))
          kind = roleHint.empty() ? "agent" : roleHint;
        else
          kind = "cli";
      }
      if (kind == "agent") {
        r.add("config " + config, Status::fail, "an agent config, but of which role?",
              "imgpipe doctor --role build|relay|glance " + config);
        continue;
      }
      if (kind == "coordinator") {
        checkConfigWithDaemon(r, "imgpipe-coordinator", config);
        auto c = coord::parseCoordinatorConfig(YamlReader::fromFile(config));
        checkSecretKey(r, c.keyFile);
        try {
          auto keys = net::AuthorizedKeys::load(c.authorizedKeys);
          r.add("authorized_keys " + c.authorizedKeys.string(), Status::ok,
                std::to_string(keys.all().size()) + " keys");
        } catch (const Error& e) {
          r.add("authorized_keys " + c.authorizedKeys.string(), Status::fail, e.what(),
                "one 'name role key' per line");
        }
        checkSpace(r, c.stateDir, 1ull << 30, "the coordinator database");
      } else if (kind != "cli") {
        const std::string roleName = kind;
        auto role = parseRole(roleName);
        if (!role) {
          r.add("config " + config, Status::fail, "cannot tell the role from the file name",
                "name it agent-ROLE.yaml");
          continue;
        }
        const bool valid = checkConfigWithDaemon(r, "imgpipe-agent-" + roleName, config);
        auto doc = YamlReader::fromFile(config);
        auto c = agent::parseAgentConfig(doc, *role);
        checkSecretKey(r, c.keyFile);
        checkSpace(r, c.stateDir, *role == Role::build ? 20ull << 30 : 5ull << 30,
                   *role == Role::build ? "builds and their caches" : "the artifact store");
        if (*role == Role::build) checkBuildHost(r);
        if (*role == Role::glance) {
          // An invalid config was named above; probing with it would only say so again.
          if (valid) checkGlance(r, config);
          auto qemuImg = which("qemu-img");
          r.add("tool qemu-img", qemuImg ? Status::ok : Status::fail,
                qemuImg ? *qemuImg : "not found",
                "apt-get install qemu-utils (images are checked before registration)");
        }
        try {
          checkCoordinator(r, c.coordinatorEndpoint, c.coordinatorKey,
                           net::loadSecretKey(c.keyFile), roleName);
        } catch (const Error&) {
          // The key check above already explains it.
        }
      } else {
        // The CLI's own config.
        auto doc = YamlReader::fromFile(config);
        if (doc.has("key")) checkSecretKey(r, doc.at("key").asPath());
        GlobalOptions g;
        g.config = config;
        auto conn = resolveConnection(g);
        r.add("config " + config, Status::ok, "valid");
        checkCoordinator(r, conn.endpoint, conn.coordinatorKey, conn.keys, "operator");
      }
    } catch (const Error& e) {
      r.add("config " + config, Status::fail, e.what(),
            "correct the file; the message names the line and field");
    }
  }
  r.print(json);
  return r.failed() ? kJobFailed : kOk;
}

}  // namespace imgpipe::cli
