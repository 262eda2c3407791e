// The life of a job: build -> hops (cut-through, fan-out) -> registrations, with retries.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/agent/wire.h"
#include "common/error.h"
#include "common/log.h"
#include "coordinator/engine.h"
#include "protocol/codec.h"

namespace imgpipe::coord {
namespace {

std::string taskIdFor(const Job& job, const Step& step) {
  return job.idText() + "." + std::to_string(step.index) + "." + std::to_string(step.attempt);
}

agent::LogLevel levelOf(proto::LogLevel l) {
  return l == proto::LogLevel::ERROR  ? agent::LogLevel::error
         : l == proto::LogLevel::WARN ? agent::LogLevel::warn
                                      : agent::LogLevel::info;
}

}  // namespace

void Engine::event(Job& job, agent::LogLevel level, const std::string& step,
                   const std::string& agentName, const std::string& message, std::int64_t timeMs) {
  JobEventRow e{0, timeMs ? timeMs : nowMs(), level, step, agentName, message};
  store_.appendEvent(job.id, e);
  auto log = log::forJob(job.idText(), step);
  log->log(level == agent::LogLevel::error  ? spdlog::level::err
           : level == agent::LogLevel::warn ? spdlog::level::warn
                                            : spdlog::level::info,
           "{}{}", agentName.empty() ? "" : "[" + agentName + "] ", message);
  touched(job);
}

void Engine::touched(Job& job) {
  job.updatedMs = nowMs();
  changed_.insert(job.id);
}

void Engine::persist(Job& job, Step* step) {
  touched(job);
  Transaction tx(store_.db());
  if (step) store_.updateStep(job.id, *step);
  store_.updateJob(job);
  tx.commit();
  if (step) dirtyProgress_.erase({job.id, step->index});
}

void Engine::flushProgress() {
  lastFlush_ = now();
  if (dirtyProgress_.empty()) return;
  Transaction tx(store_.db());
  for (const auto& [jobId, index] : dirtyProgress_)
    if (auto* job = activeJob(jobId))
      if (auto* step = job->step(index)) store_.updateStep(jobId, *step);
  tx.commit();
  dirtyProgress_.clear();
}

void Engine::onTaskEvent(AgentLive& agent, proto::TaskEvent::Reader e) {
  const std::string taskId = e.getTaskId();
  auto ack = [&] {
    if (!e.getReliable()) return;
    proto::EnvelopeBuilder b;
    auto a = b.body().initTaskEventAck();
    a.setTaskId(taskId);
    a.setSeq(e.getSeq());
    sendTo(agent, b.frame());
  };
  auto it = tasks_.find(taskId);
  Job* job = it == tasks_.end() ? nullptr : activeJob(it->second.first);
  Step* step = job ? job->step(it->second.second) : nullptr;
  if (!step || step->taskId != taskId || step->agent != agent.name) {
    // A stale attempt: acknowledge so the agent stops re-sending, and stop it if still running.
    ack();
    if (e.getKind().which() == proto::TaskEvent::Kind::PROGRESS) {
      proto::EnvelopeBuilder b;
      auto c = b.body().initCancelTask();
      c.setTaskId(taskId);
      c.setReason("task is no longer current");
      sendTo(agent, b.frame());
    }
    return;
  }
  auto kind = e.getKind();
  if (!e.getReliable()) {
    if (kind.which() != proto::TaskEvent::Kind::PROGRESS || e.getSeq() <= step->lastProgressSeq)
      return;
    step->lastProgressSeq = e.getSeq();
    auto p = kind.getProgress();
    if (step->kind == StepKind::fetch && p.getDone() > step->done)
      counters_.linkBytes[{step->upstream, step->agent}] += p.getDone() - step->done;
    step->detail = p.getStep();
    if (!std::string(p.getState()).empty()) step->detail += " (" + std::string(p.getState()) + ")";
    step->done = p.getDone();
    step->total = p.getTotal();
    step->rateBps = p.getRateBps();
    step->etaS = p.getEtaS();
    step->retries = p.getAttempt();
    step->unit = p.getUnit();
    if (step->state == StepState::waiting) step->state = StepState::running;
    dirtyProgress_.insert({job->id, step->index});
    touched(*job);
    return;
  }
  if (e.getSeq() <= step->lastReliableSeq) {
    ack();  // a duplicate after a reconnect
    return;
  }
  step->lastReliableSeq = e.getSeq();
  switch (kind.which()) {
    case proto::TaskEvent::Kind::LOG: {
      auto l = kind.getLog();
      std::string msg = l.getMessage();
      if (l.getDurationMs() > 0) {
        msg += " (" + std::to_string(l.getDurationMs()) + " ms)";
        if (step->kind == StepKind::build)
          stepDurations_.emplace_back(l.getStep(), static_cast<double>(l.getDurationMs()) / 1000.0);
      }
      event(*job, levelOf(l.getLevel()),
            step->name + (l.getStep().size() ? "/" + std::string(l.getStep()) : ""), agent.name,
            msg, e.getTimeMs());
      persist(*job, step);
      break;
    }
    case proto::TaskEvent::Kind::COMPLETED:
      agent.tasks.erase(taskId);
      tasks_.erase(taskId);
      onTaskCompleted(*job, *step, kind.getCompleted());
      break;
    case proto::TaskEvent::Kind::FAILED:
      agent.tasks.erase(taskId);
      tasks_.erase(taskId);
      onTaskFailed(*job, *step, kind.getFailed());
      break;
    case proto::TaskEvent::Kind::PROGRESS:
      break;
  }
  ack();  // only after the change is committed
  advance(*job);
  schedule();
}

namespace {

// A build's checks, kept with its step for `imgpipe show` (Step::result).
std::string checksJson(capnp::List<proto::CheckResult>::Reader checks) {
  nlohmann::json out = nlohmann::json::array();
  for (auto c : checks)
    out.push_back({{"group", std::string(c.getGroup())},
                   {"check", std::string(c.getCheck())},
                   {"ok", c.getOk()},
                   {"skipped", c.getSkipped()},
                   {"detail", std::string(c.getDetail())}});
  return out.dump();
}

}  // namespace

void Engine::onTaskCompleted(Job& job, Step& step, proto::TaskResult::Reader r) {
  step.state = StepState::done;
  step.finishedMs = nowMs();
  step.detail.clear();
  step.error.clear();
  if (step.total > 0) step.done = step.total;
  ++counters_.stepResults[std::string(toString(step.kind)) + "/done"];
  std::string summary = "done";
  if (step.kind == StepKind::build) {
    if (!r.hasArtifact() || std::string(r.getArtifact().getId()).empty()) {
      persist(job, &step);
      failJob(job, "build agent " + step.agent + " reported success without an artifact");
      return;
    }
    // The job's name and version were fixed at submit: a build that reports others is refused,
    // never adopted (the version is the job's, not the agent's or an earlier build's). Each
    // artifact is one carried output (definition::carrierOf), each once, the qcow2 first.
    auto reported = agent::toArtifactInfo(r.getArtifact());
    std::vector<agent::ArtifactInfo> more;
    for (auto a : r.getMoreArtifacts())
      more.push_back(agent::toArtifactInfo(a));
    std::vector<const agent::ArtifactInfo*> all{&reported};
    for (const auto& a : more)
      all.push_back(&a);
    std::string mismatch;
    std::vector<definition::OutputKind> seen;
    for (size_t i = 0; i < all.size() && mismatch.empty(); ++i) {
      const auto& a = *all[i];
      const auto kind = definition::parseOutputField(a.kind);
      if (a.imageName != job.imageName)
        mismatch = "image name '" + a.imageName + "', the job builds '" + job.imageName + "'";
      else if (a.imageVersion != job.imageVersion)
        mismatch =
            "version '" + a.imageVersion + "', the job's version is '" + job.imageVersion + "'";
      else if (!kind || definition::carrierOf(*kind) != *kind)
        mismatch =
            "an artifact of output '" + a.kind + "', which is not a file this coordinator delivers";
      else if ((i == 0) != (*kind == definition::OutputKind::qcow2) ||
               definition::lists(seen, *kind))
        mismatch = "its " + std::string(definition::toString(*kind)) +
                   " artifact out of place (the qcow2 first, each output once)";
      if (kind) seen.push_back(*kind);
    }
    if (!mismatch.empty()) {
      step.state = StepState::failed;
      step.error = "build agent " + step.agent + " reported " + mismatch;
      persist(job, &step);
      event(job, agent::LogLevel::error, step.name, step.agent, step.error);
      failJob(job, "build failed: " + step.error);
      return;
    }
    job.artifact = std::move(reported);
    job.moreArtifacts = std::move(more);
    step.result = checksJson(r.getChecks());
    summary = "built " + job.artifact->imageName + " " + job.artifact->imageVersion + " (" +
              std::to_string(job.artifact->size) + " bytes, sha256 " + job.artifact->id + ")";
    for (const auto& a : job.moreArtifacts)
      summary += ", " + a.kind + " " + std::to_string(a.size) + " bytes, sha256 " + a.id;
  } else if (step.kind == StepKind::register_) {
    step.result = r.getGlanceImageId();
    summary = "registered as Glance image " + step.result;
  } else {
    summary = "delivered to " + step.agent;
  }
  if (r.getDetail().size() > 0) summary += ": " + std::string(r.getDetail());
  persist(job, &step);
  event(job, agent::LogLevel::info, step.name, step.agent, summary);
}

void Engine::onTaskFailed(Job& job, Step& step, proto::TaskFailure::Reader f) {
  std::string msg = f.getMessage();
  if (f.getStep().size() > 0) msg = std::string(f.getStep()) + ": " + msg;
  if (f.getExitCode() != 0) msg += " (exit code " + std::to_string(f.getExitCode()) + ")";
  std::string full = msg;
  for (auto line : f.getOutputTail())
    full += "\n  " + std::string(line);
  step.error = msg;
  if (step.kind == StepKind::build) step.result = checksJson(f.getChecks());
  ++counters_.stepResults[std::string(toString(step.kind)) + "/failed"];
  event(job, agent::LogLevel::error, step.name, step.agent, full);
  if (f.getRetryable() && step.attempt < options_.maxAttempts) {
    retryLater(job, step, msg);
    return;
  }
  step.state = StepState::failed;
  step.finishedMs = nowMs();
  persist(job, &step);
  failJob(job, step.name + " failed: " + msg);
}

void Engine::retryLater(Job& job, Step& step, const std::string& why) {
  auto delay = options_.retryDelay *
               (1 << std::min<std::uint32_t>(step.attempt > 0 ? step.attempt - 1 : 0, 6));
  step.state = StepState::pending;
  step.notBeforeMs = nowMs() + delay.count();
  step.detail = "retrying in " + std::to_string(delay.count() / 1000) + " s";
  if (step.kind == StepKind::build) step.agent.clear();
  persist(job, &step);
  event(job, agent::LogLevel::warn, step.name, "",
        "attempt " + std::to_string(step.attempt) + " of " + std::to_string(options_.maxAttempts) +
            " failed (" + why + "); retrying in " + std::to_string(delay.count() / 1000) + " s");
}

void Engine::requeueBuild(Job& job, Step& step, const std::string& why) {
  ++counters_.requeuedBuilds;
  step.state = StepState::pending;
  step.agent.clear();
  step.detail = "re-queued";
  step.notBeforeMs = 0;
  persist(job, &step);
  event(job, agent::LogLevel::warn, step.name, "", "re-queued: " + why);
  enqueue(job);
}

void Engine::failJob(Job& job, const std::string& error) {
  cancelRunningSteps(job, "job failed: " + error);
  job.error = error;
  finishJob(job, JobState::failed);
}

void Engine::finishJob(Job& job, JobState state) {
  job.state = state;
  ++counters_.jobsFinished[std::string(toString(state))];
  for (auto& s : job.steps)
    if (s.kind == StepKind::fetch && s.state != StepState::pending)
      grantUpstream(job, s, /*revoke=*/true);
  dequeue(job);
  persist(job);
  event(job, state == JobState::done ? agent::LogLevel::info : agent::LogLevel::error, "", "",
        "job " + std::string(toString(state)) + (job.error.empty() ? "" : ": " + job.error));
}

void Engine::cancelRunningSteps(Job& job, const std::string& reason) {
  for (auto& s : job.steps) {
    if (s.state == StepState::running || s.state == StepState::waiting) {
      if (auto* a = agentNamed(s.agent)) {
        proto::EnvelopeBuilder b;
        auto c = b.body().initCancelTask();
        c.setTaskId(s.taskId);
        c.setReason(reason);
        sendTo(*a, b.frame());
        a->tasks.erase(s.taskId);
      }
      tasks_.erase(s.taskId);
      s.state = StepState::cancelled;
      s.finishedMs = nowMs();
      store_.updateStep(job.id, s);
    } else if (s.state == StepState::pending) {
      s.state = StepState::cancelled;
      store_.updateStep(job.id, s);
    }
  }
}

void Engine::planDelivery(Job& job) {
  using definition::OutputKind;
  const std::string buildAgent = job.steps[0].agent;
  // What each controller registers: the outputs the build made, as its site wants them. Each
  // artifact (the qcow2, an iso) travels its own tree, towards the controllers that register
  // something made of it only.
  std::vector<std::pair<std::string, OutputKind>> registrations;
  std::vector<std::pair<const agent::ArtifactInfo*, std::vector<Hop>>> deliveries;
  try {
    std::vector<const agent::ArtifactInfo*> artifacts{&*job.artifact};
    for (const auto& a : job.moreArtifacts)
      artifacts.push_back(&a);
    std::vector<OutputKind> made;
    for (const auto* a : artifacts)
      for (const auto& name : a->outputs) {
        auto kind = definition::parseOutputKind(name);
        if (!kind)
          throw Error("the build reported output '" + name + "', unknown to this coordinator");
        // An output nothing carries (an iso from a build agent before 0.5, which kept it)
        // cannot be registered anywhere.
        if (job.artifactOf(definition::carrierOf(*kind)) && !definition::lists(made, *kind))
          made.push_back(*kind);
      }
    if (made.empty()) made.push_back(OutputKind::qcow2);  // built before outputs
    for (const auto& controller : job.targets)
      for (auto kind : options_.topology.outputsAt(controller, made))
        registrations.emplace_back(controller, kind);
    for (const auto* a : artifacts) {
      std::vector<std::string> controllers;
      for (const auto& [controller, kind] : registrations)
        if (job.artifactOf(definition::carrierOf(kind)) == a &&
            std::find(controllers.begin(), controllers.end(), controller) == controllers.end())
          controllers.push_back(controller);
      if (!controllers.empty())
        deliveries.emplace_back(a, options_.topology.plan(buildAgent, controllers));
    }
  } catch (const Error& e) {
    failJob(job, e.what());
    return;
  }
  Transaction tx(store_.db());
  std::string route;
  for (const auto& [artifact, hops] : deliveries) {
    const auto kind = *definition::parseOutputField(artifact->kind);
    const std::string suffix = outputSuffix(kind);
    for (const auto& hop : hops) {
      Step s;
      s.index = static_cast<int>(job.steps.size());
      s.kind = StepKind::fetch;
      s.output = definition::toString(kind);
      s.name = "hop " + hop.from + " -> " + hop.to + suffix;
      s.agent = hop.to;
      s.upstream = hop.from;
      s.total = artifact->size;
      job.steps.push_back(s);
      store_.insertStep(job.id, s);
      route += (route.empty() ? "" : ", ") + hop.from + " -> " + hop.to + suffix;
    }
  }
  for (const auto& [controller, output] : registrations) {
    Step s;
    s.index = static_cast<int>(job.steps.size());
    s.kind = StepKind::register_;
    s.output = definition::toString(output);
    s.name = "register " + controller + outputSuffix(output);
    s.agent = controller;
    job.steps.push_back(s);
    store_.insertStep(job.id, s);
  }
  tx.commit();
  std::string registers;
  for (const auto& [controller, output] : registrations)
    registers += (registers.empty() ? "" : ", ") + std::string(definition::toString(output)) +
                 " at " + controller;
  event(job, agent::LogLevel::info, "route", "",
        "delivery plan: " + (route.empty() ? "local" : route) + "; registers " + registers);
}

namespace {

// The artifact a fetch step carries or a register step is made from, by its output kind:
// steps of one job with the same carrier move the same file.
std::optional<definition::OutputKind> carried(const Step& s) {
  auto kind = s.outputKind();
  return kind ? std::optional(definition::carrierOf(*kind)) : std::nullopt;
}

}  // namespace

void Engine::advance(Job& job) {
  if (isTerminal(job.state) || job.steps.empty()) return;
  Step& build = job.steps[0];
  JobState next = job.state;
  if (build.state == StepState::pending) {
    next = JobState::queued;
  } else if (build.state == StepState::running || build.state == StepState::waiting) {
    next = JobState::building;
  } else if (build.state == StepState::done) {
    if (job.steps.size() == 1) {
      planDelivery(job);
      if (isTerminal(job.state)) return;
    }
    // planDelivery grew job.steps: `build` may point into the old storage.
    const std::string buildAgent = job.steps[0].agent;
    const auto wallNow = nowMs();
    bool transferring = false, registering = false;
    for (auto& s : job.steps) {
      if (s.kind == StepKind::fetch && s.state != StepState::done) transferring = true;
      if (s.kind == StepKind::register_ && s.state != StepState::done) registering = true;
      if (s.state != StepState::pending || (s.notBeforeMs != 0 && s.notBeforeMs > wallNow))
        continue;
      if (s.kind == StepKind::fetch) {
        // Cut-through: a hop may start as soon as its upstream has started receiving the same
        // artifact.
        bool upstreamReady = s.upstream == buildAgent;
        for (const auto& u : job.steps)
          if (u.kind == StepKind::fetch && u.agent == s.upstream && carried(u) == carried(s) &&
              (u.state == StepState::running || u.state == StepState::done ||
               u.state == StepState::waiting))
            upstreamReady = true;
        if (upstreamReady) startFetch(job, s);
      } else if (s.kind == StepKind::register_) {
        bool delivered = false;
        for (const auto& u : job.steps)
          if (u.kind == StepKind::fetch && u.agent == s.agent && carried(u) == carried(s) &&
              u.state == StepState::done)
            delivered = true;
        if (s.agent == buildAgent) delivered = true;
        if (delivered) startRegister(job, s);
      }
    }
    if (isTerminal(job.state)) return;  // a step could not start and failed the job
    next = transferring  ? JobState::transferring
           : registering ? JobState::registering
                         : JobState::done;
  }
  if (next == JobState::done) {
    finishJob(job, JobState::done);
    return;
  }
  if (next != job.state) {
    job.state = next;
    persist(job);
  }
}

void Engine::sendTask(Job& job, Step& step, AgentLive& agent) {
  const agent::ArtifactInfo* a = job.artifactFor(step);
  if (step.kind != StepKind::build && !a) {
    // A step of an output this coordinator cannot find the file of (a record of a newer one).
    failJob(job, step.name + ": the job has no artifact of output '" + step.output + "'");
    return;
  }
  ++step.attempt;
  step.taskId = taskIdFor(job, step);
  step.state = StepState::running;
  step.startedMs = nowMs();
  step.finishedMs = 0;
  step.detail.clear();
  step.error.clear();
  step.lastReliableSeq = 0;
  step.lastProgressSeq = 0;
  persist(job, &step);
  tasks_[step.taskId] = {job.id, step.index};
  agent.tasks.insert(step.taskId);

  agent::TaskSpec spec;
  spec.taskId = step.taskId;
  spec.jobId = job.idText();
  spec.step = step.name;
  spec.attempt = step.attempt;
  switch (step.kind) {
    case StepKind::build:
      spec.kind = agent::BuildSpec{store_.loadDefinition(job.id),
                                   job.definitionName,
                                   job.definitionDigest,
                                   job.imageVersion,
                                   job.imageName,
                                   store_.loadBundleFiles(job.id)};
      break;
    case StepKind::fetch: {
      auto* up = agentNamed(step.upstream);
      std::string endpoint = up ? up->dataEndpoint : "";
      std::uint64_t rate = 0;
      for (const auto& l : options_.topology.links())
        if ((l.from == step.upstream ||
             (l.from == "build" && step.upstream == job.steps[0].agent)) &&
            l.to == step.agent) {
          if (!l.endpoint.empty()) endpoint = l.endpoint;
          rate = l.rateLimit;
        }
      const auto* key = keys_.current().findByName(step.upstream);
      spec.kind = agent::FetchSpec{
          a->id,    a->manifestDigest,         a->imageName, a->imageVersion, step.upstream,
          endpoint, key ? key->publicKey : "", rate,         a->size};
      break;
    }
    case StepKind::register_:
      spec.kind = agent::RegisterSpec{a->id,
                                      a->manifestDigest,
                                      store_.coordinatorId() + "/" + job.idText() + "/" + a->id,
                                      a->imageName,
                                      a->imageVersion,
                                      a->id,
                                      a->sha512,
                                      a->size,
                                      step.output};
      break;
  }
  proto::EnvelopeBuilder b;
  agent::fillTask(b.body().initAssignTask(), spec);
  sendTo(agent, b.frame());
  ++counters_.tasksAssigned;
  event(job, agent::LogLevel::info, step.name, agent.name,
        "assigned to " + agent.name + " (attempt " + std::to_string(step.attempt) + ")");
}

bool Engine::assignBuild(Job& job, AgentLive& agent) {
  Step& build = job.steps[0];
  build.agent = agent.name;
  sendTask(job, build, agent);
  job.state = JobState::building;
  persist(job);
  return true;
}

void Engine::grantUpstream(const Job& job, const Step& fetch, bool revoke,
                           const std::string& peerKey) {
  auto* up = agentNamed(fetch.upstream);
  const auto* current = keys_.current().findByName(fetch.agent);
  const std::string key = !peerKey.empty() ? peerKey : current ? current->publicKey : "";
  const auto* artifact = job.artifactFor(fetch);
  if (!up || key.empty() || !artifact) return;
  proto::EnvelopeBuilder b;
  auto g = b.body().initGrant();
  g.setArtifactId(artifact->id);
  g.setPeerName(fetch.agent);
  g.setPeerKey(key);
  g.setJobId(job.idText());
  g.setRevoke(revoke);
  sendTo(*up, b.frame());
}

void Engine::startFetch(Job& job, Step& step) {
  auto* a = agentNamed(step.agent);
  auto* up = agentNamed(step.upstream);
  if (!a || !a->online) {
    step.detail = "waiting for agent " + step.agent;
    return;
  }
  if (!keys_.current().findByName(step.agent) || !keys_.current().findByName(step.upstream)) {
    failJob(job, "no authorized key for '" + step.agent + "' or '" + step.upstream + "'");
    return;
  }
  if (!up || !up->online) {
    step.detail = "waiting for upstream " + step.upstream;
    return;
  }
  grantUpstream(job, step);
  sendTask(job, step, *a);
}

void Engine::startRegister(Job& job, Step& step) {
  auto* a = agentNamed(step.agent);
  if (!a || !a->online) {
    step.detail = "waiting for agent " + step.agent;
    return;
  }
  sendTask(job, step, *a);
}

namespace {
std::vector<std::string> laneKey(std::vector<std::string> labels) {
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  return labels;
}
}  // namespace

void Engine::enqueue(const Job& job) {
  lanes_[laneKey(job.labels)].insert({-job.priority, job.id});
}

void Engine::dequeue(const Job& job) {
  auto it = lanes_.find(laneKey(job.labels));
  if (it != lanes_.end()) it->second.erase({-job.priority, job.id});
}

void Engine::schedule() {
  std::vector<AgentLive*> free;
  for (auto& [name, a] : agents_)
    if (a.online && a.role == "build" && a.tasks.size() < a.capacity) free.push_back(&a);
  if (free.empty()) return;
  // The free agents each lane may use, worked out once per pass.
  struct Candidate {
    Lane* lane;
    std::vector<AgentLive*> agents;
  };
  std::vector<Candidate> candidates;
  for (auto& [labels, lane] : lanes_) {
    if (lane.empty()) continue;
    Candidate c{&lane, {}};
    for (auto* a : free)
      if (std::all_of(labels.begin(), labels.end(), [&](const std::string& l) {
            return std::find(a->labels.begin(), a->labels.end(), l) != a->labels.end();
          }))
        c.agents.push_back(a);
    if (!c.agents.empty()) candidates.push_back(std::move(c));
  }
  const auto wallNow = nowMs();
  for (;;) {
    // The best head over all lanes that have an agent: highest priority, then oldest.
    Candidate* best = nullptr;
    for (auto& c : candidates) {
      while (!c.lane->empty()) {
        Job* job = activeJob(std::get<1>(*c.lane->begin()));
        if (job && !job->steps.empty() && job->steps[0].state == StepState::pending &&
            job->steps[0].notBeforeMs <= wallNow)
          break;
        c.lane->erase(
            c.lane->begin());  // ended, started, or waiting out a retry delay (re-queued by tick)
      }
      if (c.lane->empty() || c.agents.empty()) continue;
      if (!best || *c.lane->begin() < *best->lane->begin()) best = &c;
    }
    if (!best) return;
    Job& job = *activeJob(std::get<1>(*best->lane->begin()));
    best->lane->erase(best->lane->begin());
    AgentLive* agent =
        *std::min_element(best->agents.begin(), best->agents.end(), [](auto* x, auto* y) {
          return x->tasks.size() * y->capacity < y->tasks.size() * x->capacity;
        });
    assignBuild(job, *agent);
    if (agent->tasks.size() >= agent->capacity)
      for (auto& c : candidates)
        std::erase(c.agents, agent);
  }
}

}  // namespace imgpipe::coord

namespace imgpipe::coord {

std::map<std::pair<std::string, std::string>, std::uint64_t> Engine::linkRates() const {
  std::map<std::pair<std::string, std::string>, std::uint64_t> out;
  for (const auto& [id, job] : active_)
    for (const auto& s : job.steps)
      if (s.kind == StepKind::fetch && s.state == StepState::running)
        out[{s.upstream, s.agent}] += s.rateBps;
  return out;
}

std::vector<std::pair<std::string, double>> Engine::drainStepDurations() {
  return std::exchange(stepDurations_, {});
}

}  // namespace imgpipe::coord
