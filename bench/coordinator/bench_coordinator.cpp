// build/bench/coordinator: a real coordinator process under 1,000 heartbeating agents and 10,000
// queued jobs. Measures submit-to-assignment latency (submit sent by an operator -> assignment
// received by a build agent), and the coordinator's peak RSS and CPU time.
//
//   build/bench/coordinator [--agents N] [--queued N] [--measured N] [--rate JOBS_PER_S] [--json
//   FILE]
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <zmq.hpp>

#include "common/agent/wire.h"
#include "common/net/curve_keys.h"
#include "common/net/zap_handler.h"
#include "common/temp_dir.h"
#include "protocol/codec.h"
#include "tests/support/process.h"

using namespace imgpipe;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct ProcStats {
  double rssMb = 0, peakRssMb = 0, cpuS = 0;
};

ProcStats procStats(pid_t pid) {
  ProcStats s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rssMb = std::stod(line.substr(6)) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) s.peakRssMb = std::stod(line.substr(6)) / 1024;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), {});
  auto close = all.rfind(')');
  std::istringstream rest(all.substr(close + 2));
  std::vector<std::string> f((std::istream_iterator<std::string>(rest)), {});
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
  s.cpuS = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return s;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"coordinator benchmark"};
  int agents = 1000, queued = 10000, measured = 1000;
  double rate = 100;
  std::string jsonOut;
  app.add_option("--agents", agents)->capture_default_str();
  app.add_option("--queued", queued, "jobs parked in the queue (labels no agent has)")
      ->capture_default_str();
  app.add_option("--measured", measured, "jobs whose submit-to-assignment latency is measured")
      ->capture_default_str();
  app.add_option("--rate", rate, "submits per second while measuring")->capture_default_str();
  app.add_option("--json", jsonOut, "write the figures as a flat JSON object");
  CLI11_PARSE(app, argc, argv);
  measured = std::min(measured, agents);  // each measured job holds one agent

  // 1,000 connections need more descriptors than the default soft limit.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  TempDir dir(std::filesystem::temp_directory_path(), "imgpipe-bench-coord-");
  auto keysDir = dir.path() / "keys";
  net::writeKeyPair(net::generateKeyPair("coordinator"), keysDir);
  auto ops = net::generateKeyPair("ops");
  std::vector<net::CurveKeyPair> agentKeys;
  {
    std::ofstream ak(dir.path() / "authorized_keys");
    ak << "ops operator " << ops.publicKey << "\n";
    for (int i = 0; i < agents; ++i) {
      agentKeys.push_back(net::generateKeyPair("agent-" + std::to_string(i)));
      ak << agentKeys.back().name << " build " << agentKeys.back().publicKey << "\n";
    }
  }
  const int port = test::freePort();
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
  std::ofstream(dir.path() / "coordinator.yaml")
      << "listen: " << endpoint << "\nkey: keys/coordinator.key\nauthorized_keys: authorized_keys\n"
      << "state_dir: state\nlog_level: warn\ntopology: {default_targets: [ctrl]}\n";
  const auto coordinatorKey = net::loadPublicKey(keysDir / "coordinator.pub");
  test::Daemon coordinator({(test::buildDir() / "bin/imgpipe-coordinator").string(), "--config",
                            (dir.path() / "coordinator.yaml").string()},
                           dir.path() / "coordinator.log");
  std::this_thread::sleep_for(300ms);

  // --- agents: one thread, one DEALER each -----------------------------------------------
  zmq::context_t ctx(2);
  ctx.set(zmq::ctxopt::max_sockets, agents + 64);
  std::mutex mu;
  std::map<std::string, Clock::time_point> assignedAt;  // job id -> when its build was assigned
  std::atomic<int> registered{0};
  std::atomic<bool> stop{false};
  std::thread agentThread([&] {
    std::vector<zmq::socket_t> sockets;
    std::vector<Clock::time_point> nextBeat;
    sockets.reserve(static_cast<size_t>(agents));
    for (int i = 0; i < agents; ++i) {
      sockets.emplace_back(ctx, zmq::socket_type::dealer);
      auto& s = sockets.back();
      net::configureCurveClient(s, agentKeys[i].publicKey, agentKeys[i].secretKey, coordinatorKey);
      s.connect(endpoint);
      proto::EnvelopeBuilder b;
      auto h = b.body().initHello();
      h.setRole(proto::Role::BUILD);
      h.setName(agentKeys[i].name);
      h.setCapacity(1);
      h.setVersion("bench");
      s.send(b.frame(), zmq::send_flags::none);
      // Heartbeats spread over the second, as real agents started at different times would be.
      nextBeat.push_back(Clock::now() + std::chrono::milliseconds(i * 1000 / agents));
    }
    std::vector<zmq::pollitem_t> items;
    for (auto& s : sockets)
      items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
    proto::EnvelopeBuilder beat;
    beat.body().setHeartbeat();
    auto beatFrame = beat.frame();
    while (!stop) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
      for (size_t i = 0; i < sockets.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        zmq::message_t m;
        while (sockets[i].recv(m, zmq::recv_flags::dontwait)) {
          auto d = proto::decodeEnvelope(m);
          if (d.index() != 0) continue;
          auto body = std::get<0>(d)->root().getBody();
          if (body.isWelcome()) ++registered;
          if (body.isAssignTask()) {
            auto now = Clock::now();
            std::lock_guard lock(mu);
            assignedAt[body.getAssignTask().getJobId()] = now;
          }
        }
      }
      const auto now = Clock::now();
      for (size_t i = 0; i < sockets.size(); ++i)
        if (now >= nextBeat[i]) {
          zmq::message_t copy(beatFrame.data(), beatFrame.size());
          sockets[i].send(copy, zmq::send_flags::dontwait);
          nextBeat[i] += 1s;
        }
    }
  });

  // --- operator ------------------------------------------------------------------------
  zmq::socket_t op(ctx, zmq::socket_type::dealer);
  net::configureCurveClient(op, ops.publicKey, ops.secretKey, coordinatorKey);
  op.connect(endpoint);
  std::uint64_t requestId = 0;
  auto submit = [&](const std::vector<std::string>& labels, const std::string& name) {
    proto::EnvelopeBuilder b;
    auto r = b.body().initRequest();
    r.setRequestId(++requestId);
    auto s = r.initKind().initSubmit();
    s.setDefinition("name: " + name + "\nversion: '1'\nbase: {path: /srv/base.qcow2}\n");
    s.setDefinitionName(name + ".yaml");
    auto t = s.initTargets(1);
    t.set(0, "ctrl");
    auto l = s.initLabels(static_cast<unsigned>(labels.size()));
    for (unsigned i = 0; i < labels.size(); ++i)
      l.set(i, labels[i]);
    op.send(b.frame(), zmq::send_flags::none);
  };
  auto awaitReply = [&]() -> std::string {
    zmq::message_t m;
    for (;;) {
      if (!op.recv(m)) continue;
      auto d = proto::decodeEnvelope(m, proto::DecodeLimits{64 << 20});
      if (d.index() != 0) continue;
      auto body = std::get<0>(d)->root().getBody();
      if (!body.isReply()) continue;
      auto k = body.getReply().getKind();
      if (k.isError()) throw std::runtime_error(k.getError().getMessage().cStr());
      return k.isSubmitted() ? std::string(k.getSubmitted().getId()) : "";
    }
  };

  const auto regStart = Clock::now();
  while (registered < agents && Clock::now() - regStart < 120s) {
    if (!coordinator.running()) {
      std::cerr << "bench_coordinator: the coordinator exited at start; its log:\n"
                << coordinator.log();
      stop = true;
      agentThread.join();
      return 1;
    }
    std::this_thread::sleep_for(50ms);
  }
  const double registerS = std::chrono::duration<double>(Clock::now() - regStart).count();
  std::cout << registered << " agents registered in " << registerS << " s\n";

  // Park jobs no agent can take: they stay queued and every scheduling pass must cope with them.
  const auto parkStart = Clock::now();
  const int window = 64;  // submits in flight
  int inFlight = 0;
  for (int i = 0; i < queued; ++i) {
    submit({"gpu"}, "parked-" + std::to_string(i));
    if (++inFlight == window) {
      awaitReply();
      --inFlight;
    }
  }
  while (inFlight-- > 0)
    awaitReply();
  const double parkS = std::chrono::duration<double>(Clock::now() - parkStart).count();
  std::cout << queued << " jobs queued in " << parkS << " s (" << queued / parkS << " submits/s)\n";

  auto before = procStats(coordinator.pid());
  std::map<std::string, Clock::time_point> submittedAt;
  const auto measureStart = Clock::now();
  for (int i = 0; i < measured; ++i) {
    auto due = measureStart + std::chrono::duration<double>(i / rate);
    std::this_thread::sleep_until(due);
    auto t = Clock::now();
    submit({}, "measured-" + std::to_string(i));
    submittedAt[awaitReply()] = t;
  }
  // Let the last assignments arrive, and a few heartbeat rounds pass under full load.
  std::this_thread::sleep_for(3s);
  auto after = procStats(coordinator.pid());
  stop = true;
  agentThread.join();

  std::vector<double> latencies;
  int missing = 0;
  {
    std::lock_guard lock(mu);
    for (const auto& [id, t] : submittedAt) {
      auto it = assignedAt.find(id);
      if (it == assignedAt.end())
        ++missing;
      else
        latencies.push_back(std::chrono::duration<double, std::milli>(it->second - t).count());
    }
  }
  const double p50 = percentile(latencies, 50), p99 = percentile(latencies, 99);
  const double cpu = after.cpuS - before.cpuS;
  const double measureS = std::chrono::duration<double>(Clock::now() - measureStart).count();

  std::printf("\n%-44s %12s %10s\n", "coordinator benchmark", "measured", "target");
  std::printf("%-44s %12d\n", "agents (heartbeating every 1 s)", agents);
  std::printf("%-44s %12d\n", "jobs queued (unplaceable)", queued);
  std::printf("%-44s %12d\n", "jobs measured", static_cast<int>(latencies.size()));
  std::printf("%-44s %12.1f %10s\n", "submit->assignment latency p50 (ms)", p50, "");
  std::printf("%-44s %12.1f %10s\n", "submit->assignment latency p99 (ms)", p99, "< 50");
  std::printf("%-44s %12.1f %10s\n", "coordinator peak RSS (MB)", after.peakRssMb, "< 200");
  std::printf("%-44s %12.2f %10s\n", "coordinator CPU while measuring (s)", cpu, "");
  std::printf("%-44s %12.1f %10s\n", "  as share of one core (%)", 100 * cpu / measureS, "");
  std::printf("%-44s %12.0f %10s\n", "submits/s while queueing", queued / parkS, "");
  if (missing) std::printf("WARNING: %d measured jobs were never assigned\n", missing);

  if (!jsonOut.empty()) {
    std::ofstream(jsonOut) << nlohmann::json{{"assign_latency_p50_ms", p50},
                                             {"assign_latency_p99_ms", p99},
                                             {"rss_mb", after.peakRssMb},
                                             {"cpu_s", cpu},
                                             {"cpu_share_of_core", cpu / measureS},
                                             {"agents", agents},
                                             {"queued_jobs", queued},
                                             {"measured_jobs", latencies.size()},
                                             {"unassigned_jobs", missing},
                                             {"submits_per_s", queued / parkS},
                                             {"register_s", registerS}}
                                  .dump(2)
                           << "\n";
  }
  coordinator.stop();
  return missing == 0 ? 0 : 1;
}
