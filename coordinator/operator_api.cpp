// Requests from the imgpipe CLI (role operator).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/agent/wire.h"
#include "common/error.h"
#include "coordinator/engine.h"
#include "coordinator/replies.h"
#include "protocol/codec.h"
#include "protocol/ids.h"

namespace imgpipe::coord {
namespace {

std::optional<std::int64_t> parseJobId(const std::string& text) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

void Engine::onRequest(const std::string& routingId, const net::PeerIdentity& who,
                       proto::OperatorRequest::Reader r) {
  proto::EnvelopeBuilder b;
  auto rep = b.body().initReply();
  rep.setRequestId(r.getRequestId());
  auto kind = rep.initKind();
  auto fail = [&](proto::ErrorCode code, const std::string& message) {
    auto e = kind.initError();
    e.setCode(code);
    e.setMessage(message);
  };
  auto findJob = [&](const std::string& idText, std::optional<Job>& holder) -> Job* {
    auto id = parseJobId(idText);
    if (!id) {
      fail(proto::ErrorCode::BAD_REQUEST, "'" + idText + "' is not a job id (a positive number)");
      return nullptr;
    }
    if (auto* j = activeJob(*id)) return j;
    holder = store_.loadJob(*id);
    if (!holder) fail(proto::ErrorCode::NOT_FOUND, "no job " + idText);
    return holder ? &*holder : nullptr;
  };

  if (who.role != "operator") {
    fail(proto::ErrorCode::FORBIDDEN, "key '" + who.name + "' has role " + who.role +
                                          "; operator requests need an operator key");
    reply(routingId, b.frame());
    return;
  }
  auto req = r.getKind();
  try {
    switch (req.which()) {
      case proto::OperatorRequest::Kind::SUBMIT:
        // Answered once its definition is checked, off this thread (submits.cpp).
        startSubmit(routingId, who, r.getRequestId(), req.getSubmit());
        return;
      case proto::OperatorRequest::Kind::LIST: {
        auto l = req.getList();
        std::vector<JobState> states;
        for (auto s : l.getStates())
          if (auto st = fromProto(s)) states.push_back(*st);
        auto jobs = store_.listJobs(states, l.getLimit() ? l.getLimit() : 50);
        auto out = kind.initJobs(static_cast<unsigned>(jobs.size()));
        for (unsigned i = 0; i < jobs.size(); ++i) {
          const Job* live = activeJob(jobs[i].id);
          fillSummary(out[i], live ? *live : jobs[i]);
        }
        break;
      }
      case proto::OperatorRequest::Kind::SHOW: {
        std::optional<Job> holder;
        if (auto* j = findJob(req.getShow(), holder)) fillDetail(kind.initJob(), *j);
        break;
      }
      case proto::OperatorRequest::Kind::EVENTS: {
        std::optional<Job> holder;
        auto e = req.getEvents();
        if (auto* j = findJob(e.getJobId(), holder)) {
          auto rows = store_.events(j->id, e.getAfterSeq());
          auto out = kind.initEvents(static_cast<unsigned>(rows.size()));
          for (unsigned i = 0; i < rows.size(); ++i)
            fillEvent(out[i], rows[i]);
        }
        break;
      }
      case proto::OperatorRequest::Kind::CANCEL: {
        std::optional<Job> holder;
        Job* j = findJob(req.getCancel(), holder);
        if (!j) break;
        if (isTerminal(j->state)) {
          fail(proto::ErrorCode::CONFLICT,
               "job " + j->idText() + " already ended (" + std::string(toString(j->state)) + ")");
          break;
        }
        cancelRunningSteps(*j, "cancelled by " + who.name);
        j->error = "cancelled by " + who.name;
        finishJob(*j, JobState::cancelled);
        kind.setOk("job " + j->idText() + " cancelled");
        break;
      }
      case proto::OperatorRequest::Kind::RETRY: {
        std::optional<Job> holder;
        Job* j = findJob(req.getRetry(), holder);
        if (!j) break;
        if (j->state != JobState::failed && j->state != JobState::cancelled) {
          fail(proto::ErrorCode::CONFLICT, "job " + j->idText() + " is " +
                                               std::string(toString(j->state)) +
                                               "; only failed or cancelled jobs can be retried");
          break;
        }
        Job job = holder ? std::move(*holder) : *j;
        for (auto& s : job.steps) {
          if (s.state == StepState::failed || s.state == StepState::cancelled) {
            s.state = StepState::pending;
            s.error.clear();
            s.detail.clear();
            s.notBeforeMs = 0;
            if (s.kind == StepKind::build) s.agent.clear();
          }
        }
        job.error.clear();
        job.state =
            job.steps[0].state == StepState::done ? JobState::transferring : JobState::queued;
        const auto id = job.id;
        auto& live = active_[id] = std::move(job);
        {
          Transaction tx(store_.db());
          for (const auto& s : live.steps)
            store_.updateStep(id, s);
          store_.updateJob(live);
          tx.commit();
        }
        event(live, agent::LogLevel::info, "", who.name, "retried by " + who.name);
        if (live.steps[0].state == StepState::pending) enqueue(live);
        kind.setOk("job " + live.idText() + " retried");
        reply(routingId, b.frame());
        advance(live);
        schedule();
        return;
      }
      case proto::OperatorRequest::Kind::AGENTS: {
        auto out = kind.initAgents(static_cast<unsigned>(agents_.size()));
        unsigned i = 0;
        for (const auto& [name, a] : agents_)
          fillAgent(out[i++], a);
        break;
      }
      case proto::OperatorRequest::Kind::WATCH: {
        std::optional<Job> holder;
        Job* j = findJob(req.getWatch(), holder);
        if (!j) break;
        fillDetail(kind.initJob(), *j);
        if (!isTerminal(j->state)) {
          watchers_[j->id].insert(routingId);
          watcherKeys_[routingId] = who.key;
        }
        break;
      }
      case proto::OperatorRequest::Kind::UNWATCH: {
        if (auto id = parseJobId(req.getUnwatch())) {
          auto it = watchers_.find(*id);
          if (it != watchers_.end()) {
            it->second.erase(routingId);
            if (it->second.empty()) watchers_.erase(it);
          }
        }
        kind.setOk("");
        break;
      }
    }
  } catch (const Error& e) {
    spdlog::error("operator request from {} failed: {}", who.name, e.what());
    fail(proto::ErrorCode::INTERNAL, e.what());
  }
  reply(routingId, b.frame());
}

void Engine::pushWatchers() {
  for (auto id : changed_) {
    auto w = watchers_.find(id);
    if (w == watchers_.end()) continue;
    Job* job = activeJob(id);
    if (!job) {
      watchers_.erase(w);
      continue;
    }
    for (auto it = w->second.begin(); it != w->second.end();) {
      proto::EnvelopeBuilder b;
      fillDetail(b.body().initJobUpdate(), *job);
      if (out_.send(*it, b.frame()))
        ++it;
      else
        it = w->second.erase(it);  // the CLI went away
    }
    if (isTerminal(job->state) || w->second.empty()) watchers_.erase(w);
  }
  changed_.clear();
}

}  // namespace imgpipe::coord
