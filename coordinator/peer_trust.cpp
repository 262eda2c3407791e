// What a peer's key and the identifiers it sends entitle it to: every frame is checked against
// authorized_keys as it is now, a key removed or replaced ends its session at once, and a
// message with a malformed identifier is refused before anything is stored or forwarded.
#include <spdlog/spdlog.h>

#include "common/agent/wire.h"
#include "common/log.h"
#include "common/role.h"
#include "coordinator/engine.h"
#include "protocol/codec.h"
#include "protocol/ids.h"

namespace imgpipe::coord {

bool Engine::frameKeyAuthorized(const std::string& routingId, const net::PeerIdentity& who,
                                proto::Envelope::Reader env) {
  const auto* k = keys_.current().findByKey(who.key);
  if (k && k->name == who.name && toString(k->role) == who.role) return true;
  ++counters_.revokedKeyFrames;
  auto body = env.getBody();
  if (body.which() == proto::Envelope::Body::TASK_EVENT &&
      body.getTaskEvent().getKind().which() == proto::TaskEvent::Kind::COMPLETED)
    // What a revoked key most wants to land: always on the record.
    spdlog::warn("refused the result of task {} from {} ({}): its key is no longer authorized",
                 ids::printable(body.getTaskEvent().getTaskId().cStr()), who.name, who.role);
  else if (counters_.revokedKeyFrames <= 10 || counters_.revokedKeyFrames % 1000 == 0)
    spdlog::warn("refused a frame from {} ({}): its key is no longer authorized [{} so far]",
                 who.name, who.role, counters_.revokedKeyFrames);
  refuse(routingId, "the key of '" + who.name +
                        "' is no longer in the coordinator's authorized_keys; nothing it sends is "
                        "accepted");
  return false;
}

void Engine::enforceKeys() {
  const auto& keys = keys_.current();
  if (keys_.generation() == keysGeneration_) return;
  keysGeneration_ = keys_.generation();
  for (auto& [name, a] : agents_) {
    if (!a.online || a.key.empty()) continue;
    const auto* k = keys.findByName(name);
    if (k && k->publicKey == a.key && std::string(toString(k->role)) == a.role) continue;
    endSession(a, k ? "its key was replaced in authorized_keys"
                    : "its key was removed from "
                      "authorized_keys");
  }
}

void Engine::endRevokedWatches(const net::AuthorizedKeys& keys) {
  std::set<std::string> live;
  for (const auto& [job, rids] : watchers_)
    live.insert(rids.begin(), rids.end());
  for (auto it = watcherKeys_.begin(); it != watcherKeys_.end();) {
    const auto& [rid, key] = *it;
    const auto* k = keys.findByKey(key);
    const bool still = k && k->role == Role::operator_;
    if (live.contains(rid) && still) {
      ++it;
      continue;
    }
    if (live.contains(rid)) {
      for (auto w = watchers_.begin(); w != watchers_.end();) {
        w->second.erase(rid);
        w = w->second.empty() ? watchers_.erase(w) : std::next(w);
      }
      refuse(rid, "session closed: its key was removed from authorized_keys");
      spdlog::warn("ended the watches of a connection whose operator key is no longer authorized");
    }
    it = watcherKeys_.erase(it);
  }
}

void Engine::endSession(AgentLive& a, const std::string& why) {
  const std::string oldKey = a.key;
  refuse(a.routingId, "session closed: " + why);
  markLost(a, why);
  a.key.clear();
  // Its work cannot be trusted to finish: builds go to another agent now, not after the grace
  // period; hops it serves or receives start again under the key that replaces it.
  for (auto& [id, job] : active_) {
    for (auto& s : job.steps) {
      const bool running = s.state == StepState::running || s.state == StepState::waiting;
      if (!running) continue;
      if (s.kind == StepKind::build && s.agent == a.name) {
        a.tasks.erase(s.taskId);
        tasks_.erase(s.taskId);
        requeueBuild(job, s, "build agent " + a.name + ": " + why);
      } else if (s.kind == StepKind::fetch && (s.agent == a.name || s.upstream == a.name)) {
        if (s.agent == a.name) grantUpstream(job, s, /*revoke=*/true, oldKey);
        if (auto* downstream = agentNamed(s.agent); downstream && s.agent != a.name) {
          proto::EnvelopeBuilder b;
          auto c = b.body().initCancelTask();
          c.setTaskId(s.taskId);
          c.setReason("the upstream's key changed; the hop starts again");
          sendTo(*downstream, b.frame());
          downstream->tasks.erase(s.taskId);
        }
        if (s.agent == a.name) a.tasks.erase(s.taskId);
        tasks_.erase(s.taskId);
        s.state = StepState::pending;
        s.detail = "restarting: " + why;
        persist(job, &s);
        event(job, agent::LogLevel::warn, s.name, a.name, "hop restarts: " + a.name + " " + why);
      } else if (s.kind == StepKind::register_ && s.agent == a.name) {
        a.tasks.erase(s.taskId);
        tasks_.erase(s.taskId);
        s.state = StepState::pending;
        s.detail = "restarting: " + why;
        persist(job, &s);
      }
    }
  }
}

void Engine::onInvalidIds(AgentLive& agent, proto::Envelope::Reader env,
                          const std::string& problem) {
  ++counters_.invalidIds;
  spdlog::warn("refused a message from {}: {}", agent.name, problem);
  if (env.getBody().which() != proto::Envelope::Body::TASK_EVENT) return;
  // A task event whose own ids are well formed but whose content is not: the attempt fails on
  // the record, naming the field, and nothing of it goes further.
  auto e = env.getBody().getTaskEvent();
  const std::string taskId = e.getTaskId();
  if (!ids::valid(ids::Kind::taskId, taskId)) return;
  auto it = tasks_.find(taskId);
  Job* job = it == tasks_.end() ? nullptr : activeJob(it->second.first);
  Step* step = job ? job->step(it->second.second) : nullptr;
  if (!step || step->taskId != taskId || step->agent != agent.name) return;
  agent.tasks.erase(taskId);
  tasks_.erase(taskId);
  {
    proto::EnvelopeBuilder b;
    auto c = b.body().initCancelTask();
    c.setTaskId(taskId);
    c.setReason("refused: " + problem);
    sendTo(agent, b.frame());
  }
  if (e.getReliable()) {
    proto::EnvelopeBuilder b;
    auto a = b.body().initTaskEventAck();
    a.setTaskId(taskId);
    a.setSeq(e.getSeq());
    sendTo(agent, b.frame());
  }
  step->state = StepState::failed;
  step->finishedMs = nowMs();
  step->error = "refused what " + agent.name + " reported: " + problem;
  persist(*job, step);
  event(*job, agent::LogLevel::error, step->name, agent.name, step->error);
  failJob(*job, step->name + " failed: " + step->error);
}

}  // namespace imgpipe::coord
