#include "coordinator/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "coordinator/server.h"

namespace imgpipe::coord {

struct Metrics::Families {
  prometheus::Family<prometheus::Gauge>& jobs;
  prometheus::Family<prometheus::Counter>& jobsFinished;
  prometheus::Family<prometheus::Gauge>& agents;
  prometheus::Family<prometheus::Counter>& frames;
  prometheus::Family<prometheus::Counter>& zapRefused;
  prometheus::Family<prometheus::Counter>& tasksAssigned;
  prometheus::Family<prometheus::Counter>& requeued;
  prometheus::Family<prometheus::Counter>& stepResults;
  prometheus::Family<prometheus::Counter>& linkBytes;
  prometheus::Family<prometheus::Gauge>& linkRate;
  prometheus::Family<prometheus::Histogram>& stepSeconds;
  // Counters only go up: remember what was already added.
  std::map<std::string, double> seen;
};

namespace {
void addTo(prometheus::Counter& c, double total, double& seen) {
  if (total > seen) c.Increment(total - seen);
  seen = total;
}
}  // namespace

Metrics::Metrics(const std::string& listen, Server& server, net::Reactor& reactor)
    : server_(server), reactor_(reactor), registry_(std::make_shared<prometheus::Registry>()) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    throw Error("cannot serve metrics on " + listen + ": " + e.what());
  }
  using namespace prometheus;
  auto& r = *registry_;
  families_ = std::unique_ptr<Families>(new Families{
      BuildGauge().Name("imgpipe_jobs").Help("Active jobs by state").Register(r),
      BuildCounter()
          .Name("imgpipe_jobs_finished_total")
          .Help("Jobs that ended, by final state")
          .Register(r),
      BuildGauge()
          .Name("imgpipe_agents")
          .Help("Known agents by role and whether online")
          .Register(r),
      BuildCounter()
          .Name("imgpipe_frames_total")
          .Help("Control frames received, and dropped as malformed")
          .Register(r),
      BuildCounter()
          .Name("imgpipe_zap_refused_total")
          .Help("Connections refused: key not authorized")
          .Register(r),
      BuildCounter().Name("imgpipe_tasks_assigned_total").Help("Tasks sent to agents").Register(r),
      BuildCounter()
          .Name("imgpipe_builds_requeued_total")
          .Help("Builds re-queued after their agent was lost")
          .Register(r),
      BuildCounter()
          .Name("imgpipe_step_results_total")
          .Help("Finished steps by kind (build, fetch, register) and result")
          .Register(r),
      BuildCounter()
          .Name("imgpipe_link_bytes_total")
          .Help("Verified bytes delivered per link")
          .Register(r),
      BuildGauge()
          .Name("imgpipe_link_rate_bytes_per_second")
          .Help("Current transfer rate per link")
          .Register(r),
      BuildHistogram()
          .Name("imgpipe_build_step_seconds")
          .Help("Duration of build sub-steps")
          .Register(r),
      {}});
  exposer_->RegisterCollectable(registry_);
  timer_ = reactor_.every(std::chrono::seconds(1), [this] { update(); });
  update();
  spdlog::info("metrics on http://{}/metrics", listen);
}

Metrics::~Metrics() {
  reactor_.cancel(timer_);
}

void Metrics::update() {
  auto& f = *families_;
  auto& engine = server_.engine();
  for (auto state :
       {JobState::queued, JobState::building, JobState::transferring, JobState::registering})
    f.jobs.Add({{"state", std::string(toString(state))}}).Set(0);
  for (const auto& [state, n] : engine.jobsByState())
    f.jobs.Add({{"state", std::string(toString(state))}}).Set(static_cast<double>(n));
  for (const auto& [state, n] : engine.counters().jobsFinished)
    addTo(f.jobsFinished.Add({{"state", state}}), static_cast<double>(n),
          f.seen["finished/" + state]);
  std::map<std::pair<std::string, std::string>, double> agents;
  for (const auto& [name, a] : engine.agents()) {
    agents[{a.role, "true"}] += 0;
    agents[{a.role, "false"}] += 0;
    agents[{a.role, a.online ? "true" : "false"}] += 1;
  }
  for (const auto& [k, n] : agents)
    f.agents.Add({{"role", k.first}, {"online", k.second}}).Set(n);
  const auto& sc = server_.counters();
  addTo(f.frames.Add({{"result", "received"}}), static_cast<double>(sc.framesReceived),
        f.seen["frames/received"]);
  addTo(f.frames.Add({{"result", "dropped"}}), static_cast<double>(sc.framesDropped),
        f.seen["frames/dropped"]);
  addTo(f.zapRefused.Add({}), static_cast<double>(server_.zapRefused()), f.seen["zap"]);
  const auto& c = engine.counters();
  addTo(f.tasksAssigned.Add({}), static_cast<double>(c.tasksAssigned), f.seen["assigned"]);
  addTo(f.requeued.Add({}), static_cast<double>(c.requeuedBuilds), f.seen["requeued"]);
  for (const auto& [key, n] : c.stepResults) {
    auto slash = key.find('/');
    addTo(f.stepResults.Add({{"kind", key.substr(0, slash)}, {"result", key.substr(slash + 1)}}),
          static_cast<double>(n), f.seen["step/" + key]);
  }
  for (const auto& [link, n] : c.linkBytes)
    addTo(f.linkBytes.Add({{"from", link.first}, {"to", link.second}}), static_cast<double>(n),
          f.seen["link/" + link.first + "/" + link.second]);
  for (const auto& [link, rate] : engine.linkRates())
    f.linkRate.Add({{"from", link.first}, {"to", link.second}}).Set(static_cast<double>(rate));
  static const prometheus::Histogram::BucketBoundaries buckets{1,   5,   15,  30,  60,
                                                               120, 300, 600, 1200};
  for (const auto& [step, seconds] : engine.drainStepDurations())
    f.stepSeconds.Add({{"step", step}}, buckets).Observe(seconds);
}

}  // namespace imgpipe::coord
