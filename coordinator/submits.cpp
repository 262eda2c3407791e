// A SUBMIT from the imgpipe CLI: its definition checked on a worker thread (check_workers.h)
// within definition_check_timeout, so a hostile or huge definition never keeps the reactor from
// serving everyone else; then its jobs stored and the CLI answered, back on the reactor thread.
#include <spdlog/spdlog.h>

#include "coordinator/engine.h"
#include "coordinator/replies.h"
#include "protocol/codec.h"
#include "protocol/ids.h"

namespace imgpipe::coord {

void Engine::startSubmit(const std::string& routingId, const net::PeerIdentity& who,
                         std::uint64_t requestId, proto::SubmitRequest::Reader s) {
  SubmissionRequest request;
  const std::string source =
      s.getDefinitionName().size() ? std::string(s.getDefinitionName()) : "definition.yaml";
  request.bundle = definition::bundleOf(source, s.getDefinition());
  for (auto f : s.getBundle()) {
    const std::string path = f.getPath();
    auto bytes = f.getContent();
    if (!request.bundle.files
             .emplace(path, std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()))
             .second) {
      reply(routingId,
            errorReply(requestId, proto::ErrorCode::BAD_REQUEST,
                       "the definition bundle holds '" + ids::printable(path) + "' twice"));
      return;
    }
  }
  for (auto t : s.getTargets())
    request.targets.emplace_back(t);
  for (auto sd : s.getSiteDefinitions())
    request.siteDefinitions.emplace_back(sd.getTarget(), sd.getDefinitionName());
  PendingSubmit submit{routingId,       requestId, who.name,
                       s.getPriority(), {},        now() + options_.definitionCheckTimeout};
  for (auto l : s.getLabels())
    submit.labels.emplace_back(l);

  const auto check = nextCheck_++;
  const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(nowMs()));
  const bool started =
      checks_.start([request = std::move(request), topology = options_.topology,
                     inspect = options_.inspectDefinition,
                     when] { return planSubmission(request, topology, when, inspect); },
                    [this, check](SubmissionPlan plan) { onPlanned(check, std::move(plan)); });
  if (!started) {
    // Refused rather than queued: a queue would hold each waiting bundle (up to its 3 MiB) and
    // would need a bound of its own, and the CLI's wait would run out in it with no reason given.
    spdlog::warn("refused a submit from {}: {} definition checks are running", who.name,
                 checks_.limit());
    reply(routingId,
          errorReply(requestId, proto::ErrorCode::CONFLICT,
                     "the coordinator is busy checking " + std::to_string(checks_.limit()) +
                         " definitions (its limit); retry in a moment"));
    return;
  }
  checking_.emplace(check, std::move(submit));
}

void Engine::expireChecks() {
  const auto at = now();
  for (auto it = checking_.begin(); it != checking_.end();) {
    if (at < it->second.deadline) {
      ++it;
      continue;
    }
    // The check's thread runs on (it cannot be stopped) and keeps its slot in checks_ until it
    // ends; its result finds no submit here and is dropped.
    const auto& submit = it->second;
    const auto limitMs = options_.definitionCheckTimeout.count();
    spdlog::warn("refused a submit from {}: its definition check ran past {} ms",
                 submit.operatorName, limitMs);
    reply(submit.routingId,
          errorReply(submit.requestId, proto::ErrorCode::BAD_REQUEST,
                     "checking the definition took longer than the coordinator's "
                     "definition_check_timeout (" +
                         std::to_string(limitMs) + " ms); nothing was submitted"));
    it = checking_.erase(it);
  }
}

void Engine::answerSubmit(const PendingSubmit& submit, SubmissionPlan& plan) {
  if (plan.refusal) {
    const bool theirs = plan.refusal->kind() == ErrorKind::refused;
    if (!theirs)
      spdlog::error("checking a definition from {} failed: {}", submit.operatorName,
                    plan.refusal->what());
    reply(submit.routingId,
          errorReply(submit.requestId,
                     theirs ? proto::ErrorCode::BAD_REQUEST : proto::ErrorCode::INTERNAL,
                     plan.refusal->what()));
    return;
  }
  // Here, in the callback that stores the jobs: a version is taken by the time the next
  // submit's plan is stored.
  takeVersions(plan.jobs, [this](const std::string& name, const std::string& version) {
    return store_.versionTaken(name, version);
  });
  std::vector<Job> jobs;
  for (const auto& p : plan.jobs) {
    Job job;
    job.imageName = p.imageName;
    job.imageVersion = p.imageVersion;
    job.definitionName = p.bundle.rootPath;
    job.definitionDigest = p.definitionDigest;
    job.priority = submit.priority;
    job.labels = submit.labels;
    for (const auto& t : p.targets)
      job.targets.push_back(t.controller);
    job.createdMs = job.updatedMs = nowMs();
    Step build;
    build.index = 0;
    build.kind = StepKind::build;
    build.name = "build";
    job.steps.push_back(build);
    jobs.push_back(std::move(job));
  }
  for (std::size_t g = 0; g < jobs.size(); ++g) {
    auto files = plan.jobs[g].bundle.files;
    const std::string rootText = files.at(plan.jobs[g].bundle.rootPath);
    files.erase(plan.jobs[g].bundle.rootPath);
    store_.insertJob(jobs[g], rootText, files);
  }
  for (std::size_t g = 0; g < jobs.size(); ++g) {
    std::string message = "submitted by " + submit.operatorName + ": " + jobs[g].imageName + " " +
                          jobs[g].imageVersion + " from " + jobs[g].definitionName;
    if (jobs.size() > 1) {
      std::string others;
      for (const auto& j : jobs)
        if (j.id != jobs[g].id) others += (others.empty() ? "" : ", ") + j.idText();
      message += " (one image of " + std::to_string(jobs.size()) +
                 " for the sites' definitions; the others: job " + others + ")";
    }
    store_.appendEvent(jobs[g].id, {0, jobs[g].createdMs, agent::LogLevel::info, "",
                                    submit.operatorName, message});
  }

  proto::EnvelopeBuilder b;
  auto rep = b.body().initReply();
  rep.setRequestId(submit.requestId);
  auto kind = rep.initKind();
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
  // Sent once the batch that holds the jobs commits: acknowledged only once it is durable.
  reply(submit.routingId, b.frame());
  schedule();
}

}  // namespace imgpipe::coord
