// imgpipe-sim-agent ROLE --config FILE
//
// A real agent process (the real AgentSession, heartbeats, reconnects, reliable events) whose
// task work is simulated: it sleeps, reports progress and invents an artifact. For tests and the
// coordinator benchmark, which exercise the control plane, not image building. Never shipped.
#include <chrono>
#include <map>
#include <thread>

#include "common/agent/agent_main.h"
#include "common/hash.h"

using namespace imgpipe;
using namespace std::chrono_literals;

namespace {

struct SimConfig {
  std::chrono::milliseconds build{1500}, fetch{1000}, registration{500};
  std::string failBuildWith;  // non-empty: builds fail (not retryable) with this message
  // A hostile build agent (the trust tests): reports this value in this field of its artifact
  // ("id", "imageName", "imageVersion", "manifestDigest", "sha512"); the value "<long>" means
  // 100,000 characters. It also goes on talking after the coordinator refused it.
  std::string hostileField, hostileValue;
};

class SimRunner : public agent::TaskRunner {
 public:
  explicit SimRunner(SimConfig c) : c_(std::move(c)) {}

  void run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
           std::stop_token stop) override {
    std::chrono::milliseconds duration = c_.registration;
    std::string step = "register";
    if (std::holds_alternative<agent::BuildSpec>(task.kind)) duration = c_.build, step = "packages";
    if (std::holds_alternative<agent::FetchSpec>(task.kind)) duration = c_.fetch, step = "transfer";
    const std::uint64_t total = 100 << 20;
    const auto start = std::chrono::steady_clock::now();
    reporter.log(agent::LogLevel::info, step, "simulated " + step + " started");
    for (int i = 1; i <= 10; ++i) {
      auto until = start + duration * i / 10;
      while (std::chrono::steady_clock::now() < until) {
        if (stop.stop_requested()) return;  // the session reports it as stopped
        std::this_thread::sleep_for(10ms);
      }
      reporter.progress(
          {step, total * i / 10, total, total * 1000 / std::max<std::int64_t>(1, duration.count()),
           static_cast<std::uint32_t>((duration * (10 - i) / 10).count() / 1000), 0, ""});
    }
    if (auto* b = std::get_if<agent::BuildSpec>(&task.kind)) {
      if (!c_.failBuildWith.empty()) {
        reporter.failed({"packages", c_.failBuildWith, 100, {"E: simulated failure"}, false});
        return;
      }
      agent::ArtifactInfo a;
      a.id = toHex(sha256(b->definitionDigest + b->imageVersion));
      a.sha512 = toHex(sha512(a.id));
      a.size = total;
      a.virtualSize = 4ull << 30;
      a.manifestDigest = toHex(sha256("manifest" + a.id));
      a.imageName = b->imageName;
      a.imageVersion = b->imageVersion;
      if (!c_.hostileField.empty()) {
        const std::string v =
            c_.hostileValue == "<long>" ? std::string(100'000, 'a') : c_.hostileValue;
        std::map<std::string, std::string*> fields = {{"id", &a.id},
                                                      {"imageName", &a.imageName},
                                                      {"imageVersion", &a.imageVersion},
                                                      {"manifestDigest", &a.manifestDigest},
                                                      {"sha512", &a.sha512}};
        *fields.at(c_.hostileField) = v;
      }
      reporter.completed({.artifact = a, .detail = "simulated build"});
    } else if (auto* r = std::get_if<agent::RegisterSpec>(&task.kind)) {
      reporter.completed({.glanceImageId = "sim-" + r->artifactId.substr(0, 8)});
    } else {
      reporter.completed({});
    }
  }

 private:
  SimConfig c_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: imgpipe-sim-agent build|relay|glance --config FILE\n");
    return 2;
  }
  auto role = parseRole(argv[1]);
  if (!role) {
    fprintf(stderr, "unknown role %s\n", argv[1]);
    return 2;
  }
  argv[1] = argv[0];
  return agent::agentMain(argc - 1, argv + 1, *role, [](agent::RoleContext& ctx) {
    SimConfig c;
    auto s = ctx.config.at("sim");
    if (auto v = s.at("build"); !v.isNull()) c.build = v.asDuration();
    if (auto v = s.at("fetch"); !v.isNull()) c.fetch = v.asDuration();
    if (auto v = s.at("register"); !v.isNull()) c.registration = v.asDuration();
    c.failBuildWith = s.get<std::string>("fail_build_with", "");
    if (auto h = s.at("hostile"); !h.isNull()) {
      c.hostileField = h.required<std::string>("field");
      c.hostileValue = h.required<std::string>("value");
      h.rejectUnknownKeys();
    }
    const bool ignoreRefusals = s.get<bool>("ignore_refusals", false);
    s.rejectUnknownKeys();
    agent::RoleParts parts;
    parts.ignoreRefusals = ignoreRefusals;
    parts.runner = std::make_unique<SimRunner>(c);
    parts.dataEndpoint = ctx.config.get<std::string>("sim_endpoint", "");
    return parts;
  });
}
