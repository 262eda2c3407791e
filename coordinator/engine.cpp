#include "coordinator/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "common/agent/wire.h"
#include "common/log.h"
#include "coordinator/replies.h"
#include "protocol/codec.h"
#include "protocol/id_check.h"

namespace imgpipe::coord {

Engine::Engine(Store& store, net::AuthorizedKeysFile& keys, EngineOptions options, Outbound& out)
    : store_(store),
      keys_(keys),
      options_(std::move(options)),
      out_(out),
      startedAt_(now()),
      lastFlush_(startedAt_),
      checks_(options_.maxDefinitionChecks, options_.post) {
  if (!options_.post) throw std::logic_error("EngineOptions::post is not set");
  // Agents seen before are known but offline until they say hello; the grace period of a
  // build they were running counts from now.
  for (const auto& row : store_.loadAgents()) {
    AgentLive a;
    a.name = row.name;
    a.role = row.role;
    a.labels = row.labels;
    a.capacity = row.capacity;
    a.version = row.version;
    a.dataEndpoint = row.dataEndpoint;
    a.lastSeenMs = row.lastSeenMs;
    a.lostAt = startedAt_;
    agents_[a.name] = std::move(a);
  }
  for (auto& job : store_.loadActiveJobs()) {
    const auto id = job.id;
    auto& j = active_[id] = std::move(job);
    for (auto& s : j.steps) {
      if (s.state == StepState::running || s.state == StepState::waiting) {
        tasks_[s.taskId] = {id, s.index};
        // Until its agent says hello again we do not know whether the task survived.
        s.state = StepState::waiting;
        if (auto* a = agentNamed(s.agent)) a->tasks.insert(s.taskId);
      }
    }
    if (!j.steps.empty() && j.steps[0].state == StepState::pending) enqueue(j);
  }
  spdlog::info("coordinator {}: {} active jobs ({} queued), {} known agents",
               store_.coordinatorId(), active_.size(), queuedJobs(), agents_.size());
}

// Everything one input changes is committed in one transaction, and only then is anything sent:
// no peer ever hears of a state the database might not hold after a crash. If handling throws,
// the transaction rolls back and nothing is sent.
class Engine::Batch {
 public:
  explicit Batch(Engine& e) : e_(e), tx_(e.store_.db()) { e_.batching_ = true; }
  ~Batch() {
    e_.batching_ = false;
    e_.pending_.clear();
  }
  void commit() {
    tx_.commit();
    e_.batching_ = false;
    for (auto& [routingId, frame] : e_.pending_)
      e_.out_.send(routingId, std::move(frame));
    e_.pending_.clear();
  }

 private:
  Engine& e_;
  Transaction tx_;
};

void Engine::reply(const std::string& routingId, zmq::message_t frame) {
  if (batching_)
    pending_.emplace_back(routingId, std::move(frame));
  else
    out_.send(routingId, std::move(frame));
}

std::size_t Engine::queuedJobs() const {
  std::size_t n = 0;
  for (const auto& [labels, lane] : lanes_)
    n += lane.size();
  return n;
}

Engine::AgentLive* Engine::agentNamed(const std::string& name) {
  auto it = agents_.find(name);
  return it == agents_.end() ? nullptr : &it->second;
}

Job* Engine::activeJob(std::int64_t id) {
  auto it = active_.find(id);
  return it == active_.end() ? nullptr : &it->second;
}

void Engine::sendTo(AgentLive& agent, zmq::message_t frame) {
  if (!agent.online) return;
  reply(agent.routingId, std::move(frame));
  agent.liveness.sent(now());
}

void Engine::refuse(const std::string& routingId, const std::string& reason) {
  proto::EnvelopeBuilder b;
  auto r = b.body().initRefused();
  r.setReason(reason);
  r.setOurMajor(proto::PROTOCOL_MAJOR);
  reply(routingId, b.frame());
}

void Engine::onMessage(const std::string& routingId, const net::PeerIdentity& who,
                       proto::Envelope::Reader env) {
  Batch batch(*this);
  dispatch(routingId, who, env);
  batch.commit();
}

void Engine::onPlanned(std::uint64_t check, SubmissionPlan plan) {
  auto it = checking_.find(check);
  if (it == checking_.end()) {
    // Refused already by expireChecks: the operator was told, and nothing of it is stored.
    spdlog::info("a definition check ended after its time limit; its result is dropped");
    return;
  }
  const PendingSubmit submit = std::move(it->second);
  checking_.erase(it);
  try {
    Batch batch(*this);
    answerSubmit(submit, plan);
    batch.commit();
  } catch (const Error& e) {
    // Rolled back: no job of it exists.
    spdlog::error("a submit from {} could not be stored: {}", submit.operatorName, e.what());
    reply(submit.routingId, errorReply(submit.requestId, proto::ErrorCode::INTERNAL, e.what()));
  }
}

void Engine::onTick() {
  {
    Batch batch(*this);
    tick();
    batch.commit();
  }
  // Watchers are told after the commit; a failed send drops the watcher, so send directly.
  pushWatchers();
}

void Engine::dispatch(const std::string& routingId, const net::PeerIdentity& who,
                      proto::Envelope::Reader env) {
  if (auto mismatch = proto::checkVersion(env.getMajor(), env.getMinor())) {
    if (counters_.refusedHellos <= 10 || counters_.refusedHellos % 1000 == 0)
      spdlog::warn("refused {} ({}): {} [{} refused so far]", who.name, who.role, *mismatch,
                   counters_.refusedHellos);
    proto::EnvelopeBuilder b;
    auto r = b.body().initRefused();
    r.setReason(*mismatch);
    r.setPeerMajor(env.getMajor());
    r.setOurMajor(proto::PROTOCOL_MAJOR);
    reply(routingId, b.frame());
    ++counters_.refusedHellos;
    return;
  }
  if (!frameKeyAuthorized(routingId, who, env)) return;
  auto body = env.getBody();
  if (body.which() == proto::Envelope::Body::REQUEST) {
    onRequest(routingId, who, body.getRequest());
    return;
  }
  if (who.role == "operator") {
    ++counters_.unexpectedMessages;
    return;
  }
  auto badIds = proto::checkIds(env);
  if (body.which() == proto::Envelope::Body::HELLO) {
    if (badIds) {
      ++counters_.invalidIds;
      spdlog::warn("refused hello from {}: {}", who.name, *badIds);
      refuse(routingId, "refused: " + *badIds);
      return;
    }
    onHello(routingId, who, body.getHello());
    return;
  }
  AgentLive* agent = agentNamed(who.name);
  if (agent == nullptr || !agent->online || agent->routingId != routingId) {
    // A peer we hold no session for (we restarted, or declared it lost): make it register again.
    proto::EnvelopeBuilder b;
    b.body().setSayHello();
    reply(routingId, b.frame());
    return;
  }
  agent->liveness.heard(now());
  if (badIds) {
    onInvalidIds(*agent, env, *badIds);
    return;
  }
  switch (body.which()) {
    case proto::Envelope::Body::HEARTBEAT:
      break;
    case proto::Envelope::Body::TASK_EVENT:
      onTaskEvent(*agent, body.getTaskEvent());
      break;
    default:
      ++counters_.unexpectedMessages;
  }
}

void Engine::onHello(const std::string& routingId, const net::PeerIdentity& who,
                     proto::Hello::Reader hello) {
  const std::string claimedName = hello.getName();
  const auto claimedRole = agent::fromProto(hello.getRole());
  const std::string claimedRoleName = claimedRole ? std::string(toString(*claimedRole)) : "unknown";
  if (claimedName != who.name || claimedRoleName != who.role) {
    const std::string reason = "key '" + who.name + "' is authorized as " + who.role +
                               "; it cannot register as " + claimedRoleName + " '" +
                               log::untrusted(claimedName) + "'";
    ++counters_.refusedHellos;
    if (counters_.refusedHellos <= 10 || counters_.refusedHellos % 1000 == 0)
      spdlog::warn("refused hello: {} [{} refused so far]", reason, counters_.refusedHellos);
    refuse(routingId, reason);
    return;
  }
  auto& a = agents_[who.name];
  const bool wasOnline = a.online;
  a.name = who.name;
  a.role = who.role;
  a.labels.clear();
  for (auto l : hello.getLabels())
    a.labels.emplace_back(l);
  a.capacity = hello.getCapacity();
  a.version = hello.getVersion();
  a.dataEndpoint = hello.getDataEndpoint();
  a.freeBytes = hello.getFreeBytes();
  a.inventory.clear();
  for (auto i : hello.getInventory())
    a.inventory.push_back(agent::toArtifactInfo(i));
  a.routingId = routingId;
  a.key = who.key;
  a.online = true;
  a.liveness = net::PeerLiveness(options_.heartbeat, now());
  a.lastSeenMs = nowMs();
  store_.saveAgent({a.name, a.role, a.version, a.dataEndpoint, a.labels, a.capacity, a.lastSeenMs});
  spdlog::info("agent {} ({}) {} from {} (capacity {}, {} active tasks)", a.name, a.role,
               wasOnline ? "re-registered" : "registered",
               a.dataEndpoint.empty() ? "-" : a.dataEndpoint, a.capacity,
               hello.getActiveTasks().size());

  proto::EnvelopeBuilder b;
  auto w = b.body().initWelcome();
  w.setCoordinatorId(store_.coordinatorId());
  w.setHeartbeatIntervalMs(static_cast<std::uint32_t>(options_.heartbeat.interval.count()));
  w.setLiveness(static_cast<std::uint32_t>(options_.heartbeat.liveness));
  sendTo(a, b.frame());

  // Reconcile what the agent runs with what we believe it runs.
  std::set<std::string> reported;
  for (auto t : hello.getActiveTasks())
    reported.insert(t);
  for (const auto& taskId : reported) {
    auto it = tasks_.find(taskId);
    bool ours = it != tasks_.end();
    if (ours) {
      auto* job = activeJob(it->second.first);
      auto* step = job ? job->step(it->second.second) : nullptr;
      ours = step && step->taskId == taskId && step->agent == a.name;
    }
    if (!ours) {
      // Superseded (re-queued elsewhere) or from a job that ended: it must not go on.
      proto::EnvelopeBuilder c;
      auto ct = c.body().initCancelTask();
      ct.setTaskId(taskId);
      ct.setReason("task is no longer current (job re-queued, cancelled or finished)");
      sendTo(a, c.frame());
    }
  }
  std::vector<std::string> lost;
  for (const auto& taskId : a.tasks)
    if (!reported.count(taskId)) lost.push_back(taskId);
  for (const auto& taskId : lost) {
    a.tasks.erase(taskId);
    auto it = tasks_.find(taskId);
    if (it == tasks_.end()) continue;
    auto* job = activeJob(it->second.first);
    auto* step = job ? job->step(it->second.second) : nullptr;
    tasks_.erase(it);
    if (!job || !step) continue;
    event(*job, agent::LogLevel::warn, step->name, a.name,
          "agent " + a.name + " came back without task " + taskId + "; running it again");
    if (step->kind == StepKind::build) {
      requeueBuild(*job, *step, "its build agent restarted");
    } else {
      step->state = StepState::pending;
      step->detail.clear();
      persist(*job, step);
    }
  }
  for (auto& [id, job] : active_) {
    for (auto& s : job.steps) {
      if (s.agent == a.name && s.state == StepState::waiting && reported.count(s.taskId)) {
        s.state = StepState::running;
        s.detail.clear();
        persist(job, &s);
        event(job, agent::LogLevel::info, s.name, a.name,
              "agent " + a.name + " is back; task continues");
      }
      // Grants live in the serving agent's memory: give them again after it restarted.
      if (s.kind == StepKind::fetch && s.upstream == a.name &&
          (s.state == StepState::running || s.state == StepState::waiting))
        grantUpstream(job, s);
    }
  }
  for (auto& [id, job] : active_)
    advance(job);
  schedule();
}

void Engine::markLost(AgentLive& a, const std::string& why) {
  if (!a.online) return;
  a.online = false;
  a.lostAt = now();
  spdlog::warn("agent {} lost: {}", a.name, why);
  for (const auto& taskId : a.tasks) {
    auto it = tasks_.find(taskId);
    if (it == tasks_.end()) continue;
    auto* job = activeJob(it->second.first);
    auto* step = job ? job->step(it->second.second) : nullptr;
    if (!job || !step || step->state != StepState::running) continue;
    step->state = StepState::waiting;
    persist(*job, step);
    event(*job, agent::LogLevel::warn, step->name, a.name,
          "agent " + a.name + " lost (" + why + "); " +
              (step->kind == StepKind::build
                   ? "re-queued unless it returns within " +
                         std::to_string(options_.buildGrace.count() / 1000) + " s"
                   : "the step resumes when it returns"));
  }
}

void Engine::tick() {
  enforceKeys();
  endRevokedWatches(keys_.current());
  expireChecks();
  const auto at = now();
  for (auto& [name, a] : agents_) {
    if (a.online && a.liveness.expired(at)) {
      markLost(a, "silent for " + std::to_string(a.liveness.silentFor(at).count()) + " ms");
    } else if (a.online && a.liveness.heartbeatDue(at)) {
      proto::EnvelopeBuilder b;
      b.body().setHeartbeat();
      sendTo(a, b.frame());
    }
  }
  // Builds whose agent stayed away longer than the grace period go back to the queue; the
  // agent fences itself after fence_after (>= grace) so the job never runs twice.
  const auto wallNow = nowMs();
  for (auto& [id, job] : active_) {
    for (auto& s : job.steps) {
      if (s.state == StepState::waiting && s.kind == StepKind::build) {
        auto* a = agentNamed(s.agent);
        if (!a || (!a->online && at - a->lostAt > options_.buildGrace)) {
          if (a) a->tasks.erase(s.taskId);
          tasks_.erase(s.taskId);
          requeueBuild(job, s,
                       "build agent " + s.agent + " lost for more than " +
                           std::to_string(options_.buildGrace.count() / 1000) + " s");
        }
      }
      if (s.state == StepState::pending && s.notBeforeMs != 0 && s.notBeforeMs <= wallNow) {
        s.notBeforeMs = 0;
        if (s.kind == StepKind::build) enqueue(job);
      }
    }
    advance(job);
  }
  schedule();
  if (at - lastFlush_ >= std::chrono::seconds(2)) flushProgress();
  // Jobs that ended leave memory; their rows stay in the database.
  std::erase_if(active_, [&](const auto& kv) {
    return isTerminal(kv.second.state) && !watchers_.count(kv.first);
  });
}

std::map<JobState, std::size_t> Engine::jobsByState() const {
  std::map<JobState, std::size_t> out;
  for (const auto& [id, j] : active_)
    ++out[j.state];
  return out;
}

}  // namespace imgpipe::coord
