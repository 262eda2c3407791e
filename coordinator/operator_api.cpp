// Requests from the imgpipe CLI (role operator).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "common/agent/wire.h"
#include "common/error.h"
#include "common/hash.h"
#include "coordinator/definition_groups.h"
#include "coordinator/engine.h"
#include "coordinator/replies.h"
#include "definition/image_definition.h"
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
      case proto::OperatorRequest::Kind::SUBMIT: {
        auto s = req.getSubmit();
        const std::string text = s.getDefinition();
        const std::string source =
            s.getDefinitionName().size() ? std::string(s.getDefinitionName()) : "definition.yaml";
        definition::Bundle bundle = definition::bundleOf(source, text);
        std::string bundleProblem;
        for (auto f : s.getBundle()) {
          const std::string path = f.getPath();
          auto bytes = f.getContent();
          if (!bundle.files
                   .emplace(path,
                            std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()))
                   .second)
            bundleProblem = "the definition bundle holds '" + ids::printable(path) + "' twice";
        }
        if (!bundleProblem.empty()) {
          fail(proto::ErrorCode::BAD_REQUEST, bundleProblem);
          break;
        }
        std::vector<std::string> targets;
        for (auto t : s.getTargets())
          targets.emplace_back(t);
        // A target with a definition of its own: which one, by controller.
        std::map<std::string, std::string> definitionOf;
        std::string problem;
        for (auto sd : s.getSiteDefinitions()) {
          const std::string target = sd.getTarget(), path = sd.getDefinitionName();
          auto c = options_.topology.controllerFor(target);
          if (!c)
            problem = "unknown target " + ids::printable(target);
          else if (!bundle.find(path))
            problem = "the definition of " + target + " ('" + ids::printable(path) +
                      "') is not in the definition bundle";
          else if (auto [it, added] = definitionOf.emplace(*c, path); !added && it->second != path)
            problem = target + " is given two definitions (" + it->second + " and " + path + ")";
          if (std::find(targets.begin(), targets.end(), target) == targets.end())
            targets.push_back(target);
        }
        if (targets.empty()) targets = options_.topology.defaultTargets();
        if (targets.empty()) {
          fail(proto::ErrorCode::BAD_REQUEST,
               "no --target given and the coordinator has no topology.default_targets");
          break;
        }
        std::vector<ResolvedTarget> resolved;
        std::string unknown;
        for (const auto& t : targets) {
          auto c = options_.topology.controllerFor(t);
          if (!c)
            unknown += (unknown.empty() ? "" : ", ") + t;
          else if (std::none_of(resolved.begin(), resolved.end(), [&](const ResolvedTarget& known) {
                     return known.controller == *c;
                   }))
            resolved.push_back({*c, t});
        }
        if (!unknown.empty()) {
          std::string known;
          for (const auto& site : options_.topology.sites())
            known += (known.empty() ? "" : ", ") + site.name + " (" + site.controller + ")";
          fail(proto::ErrorCode::BAD_REQUEST,
               "unknown target " + unknown + "; known sites: " + (known.empty() ? "none" : known));
          break;
        }
        // One job per distinct merged definition, each with the targets that want it.
        std::vector<DefinitionGroup> groups;
        std::vector<std::string> names, versions;
        std::vector<bool> derivedVersion;
        try {
          if (!problem.empty()) throw Error(problem);
          groups = groupByDefinition(bundle, resolved, definitionOf);
          for (const auto& g : groups) {
            auto nv = options_.inspectDefinition(g.bundle);
            names.push_back(nv.first);
            versions.push_back(nv.second);
            derivedVersion.push_back(nv.second.empty());
          }
          // The one version of each job, fixed here and carried to the build, the manifest and
          // Glance. A derived one is unique per image: two submits in one second get -2, -3, ...
          const std::string derived = definition::deriveVersion(
              std::chrono::system_clock::time_point(std::chrono::milliseconds(nowMs())));
          for (auto& v : versions)
            if (v.empty()) v = derived;
          versions = groupVersions(groups, names, versions);
        } catch (const Error& e) {
          fail(proto::ErrorCode::BAD_REQUEST, e.what());
          break;
        }
        std::vector<Job> jobs;
        for (std::size_t g = 0; g < groups.size(); ++g) {
          Job job;
          job.imageName = names[g];
          job.imageVersion = versions[g];
          if (derivedVersion[g]) {
            const std::string wanted = job.imageVersion;
            for (int n = 2; store_.versionTaken(job.imageName, job.imageVersion); ++n)
              job.imageVersion = wanted + "-" + std::to_string(n);
          }
          job.definitionName = groups[g].bundle.rootPath;
          job.definitionDigest = groups[g].bundle.digest();
          job.priority = s.getPriority();
          for (auto l : s.getLabels())
            job.labels.emplace_back(l);
          for (const auto& t : groups[g].targets)
            job.targets.push_back(t.controller);
          job.createdMs = job.updatedMs = nowMs();
          Step build;
          build.index = 0;
          build.kind = StepKind::build;
          build.name = "build";
          job.steps.push_back(build);
          jobs.push_back(std::move(job));
        }
        {
          Transaction tx(store_.db());
          for (std::size_t g = 0; g < jobs.size(); ++g) {
            auto files = groups[g].bundle.files;
            const std::string rootText = files.at(groups[g].bundle.rootPath);
            files.erase(groups[g].bundle.rootPath);
            store_.insertJob(jobs[g], rootText, files);
          }
          for (std::size_t g = 0; g < jobs.size(); ++g) {
            std::string message = "submitted by " + who.name + ": " + jobs[g].imageName + " " +
                                  jobs[g].imageVersion + " from " + jobs[g].definitionName;
            if (jobs.size() > 1) {
              std::string others;
              for (const auto& j : jobs)
                if (j.id != jobs[g].id) others += (others.empty() ? "" : ", ") + j.idText();
              message += " (one image of " + std::to_string(jobs.size()) +
                         " for the sites' definitions; the others: job " + others + ")";
            }
            store_.appendEvent(
                jobs[g].id, {0, jobs[g].createdMs, agent::LogLevel::info, "", who.name, message});
          }
          tx.commit();  // acknowledged only once it is durable
        }
        auto also = rep.initAlsoSubmitted(static_cast<unsigned>(jobs.size() - 1));
        for (std::size_t g = 0; g < jobs.size(); ++g) {
          ++counters_.jobsSubmitted;
          const auto id = jobs[g].id;
          auto& stored = active_[id] = std::move(jobs[g]);
          if (g == 0)
            fillSummary(kind.initSubmitted(), stored);
          else
            fillSummary(also[static_cast<unsigned>(g - 1)], stored);
          enqueue(stored);
        }
        reply(routingId, b.frame());
        schedule();
        return;
      }
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
