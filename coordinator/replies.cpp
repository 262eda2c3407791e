#include "coordinator/replies.h"

#include <nlohmann/json.hpp>

#include "common/agent/wire.h"
#include "protocol/codec.h"

namespace imgpipe::coord {

proto::JobState toProto(JobState s) {
  switch (s) {
    case JobState::queued:
      return proto::JobState::QUEUED;
    case JobState::building:
      return proto::JobState::BUILDING;
    case JobState::transferring:
      return proto::JobState::TRANSFERRING;
    case JobState::registering:
      return proto::JobState::REGISTERING;
    case JobState::done:
      return proto::JobState::DONE;
    case JobState::failed:
      return proto::JobState::FAILED;
    case JobState::cancelled:
      return proto::JobState::CANCELLED;
  }
  return proto::JobState::FAILED;
}

std::optional<JobState> fromProto(proto::JobState s) {
  switch (s) {
    case proto::JobState::QUEUED:
      return JobState::queued;
    case proto::JobState::BUILDING:
      return JobState::building;
    case proto::JobState::TRANSFERRING:
      return JobState::transferring;
    case proto::JobState::REGISTERING:
      return JobState::registering;
    case proto::JobState::DONE:
      return JobState::done;
    case proto::JobState::FAILED:
      return JobState::failed;
    case proto::JobState::CANCELLED:
      return JobState::cancelled;
  }
  return std::nullopt;
}

namespace {
proto::StepState toProto(StepState s) {
  switch (s) {
    case StepState::pending:
      return proto::StepState::PENDING;
    case StepState::running:
      return proto::StepState::RUNNING;
    case StepState::done:
      return proto::StepState::DONE;
    case StepState::failed:
      return proto::StepState::FAILED;
    case StepState::cancelled:
      return proto::StepState::CANCELLED;
    case StepState::waiting:
      return proto::StepState::WAITING;
  }
  return proto::StepState::FAILED;
}
}  // namespace

void fillSummary(proto::JobSummary::Builder out, const Job& job) {
  out.setId(job.idText());
  out.setImageName(job.imageName);
  out.setImageVersion(job.imageVersion);
  out.setState(toProto(job.state));
  out.setCreatedMs(job.createdMs);
  out.setUpdatedMs(job.updatedMs);
  out.setLocation(job.location());
  auto t = out.initTargets(static_cast<unsigned>(job.targets.size()));
  for (unsigned i = 0; i < job.targets.size(); ++i)
    t.set(i, job.targets[i]);
  out.setPriority(job.priority);
  out.setError(job.error);
}

void fillDetail(proto::JobDetail::Builder out, const Job& job) {
  fillSummary(out.initSummary(), job);
  auto steps = out.initSteps(static_cast<unsigned>(job.steps.size()));
  unsigned images = 0;
  for (unsigned i = 0; i < job.steps.size(); ++i) {
    const Step& s = job.steps[i];
    auto o = steps[i];
    o.setName(s.name);
    o.setAgent(s.agent);
    o.setState(toProto(s.state));
    o.setDetail(s.detail);
    o.setDone(s.done);
    o.setTotal(s.total);
    o.setRateBps(s.rateBps);
    o.setEtaS(s.etaS);
    o.setAttempts(s.attempt);
    o.setRetries(s.retries);
    o.setUnit(s.unit);
    o.setError(s.error);
    o.setStartedMs(s.startedMs);
    o.setFinishedMs(s.finishedMs);
    if (s.kind == StepKind::build && !s.result.empty()) {
      auto checks = nlohmann::json::parse(s.result, nullptr, false);
      if (checks.is_array()) {
        auto list = o.initChecks(static_cast<unsigned>(checks.size()));
        for (unsigned c = 0; c < checks.size(); ++c) {
          list[c].setGroup(checks[c].value("group", ""));
          list[c].setCheck(checks[c].value("check", ""));
          list[c].setOk(checks[c].value("ok", false));
          list[c].setSkipped(checks[c].value("skipped", false));
          list[c].setDetail(checks[c].value("detail", ""));
        }
      }
    }
    if (s.kind == StepKind::register_ && !s.result.empty()) ++images;
  }
  if (job.artifact) agent::fillArtifact(out.initArtifact(), *job.artifact);
  auto more = out.initMoreArtifacts(static_cast<unsigned>(job.moreArtifacts.size()));
  for (unsigned i = 0; i < job.moreArtifacts.size(); ++i)
    agent::fillArtifact(more[i], job.moreArtifacts[i]);
  out.setDefinitionDigest(job.definitionDigest);
  out.setDefinitionName(job.definitionName);
  auto g = out.initGlanceImages(images);
  unsigned j = 0;
  for (const auto& s : job.steps) {
    if (s.kind != StepKind::register_ || s.result.empty()) continue;
    g[j].setController(s.agent);
    g[j].setImageId(s.result);
    const auto kind = s.outputKind();
    g[j].setOutput(kind ? std::string(definition::toString(*kind)) : s.output);
    ++j;
  }
}

void fillAgent(proto::AgentInfo::Builder out, const Engine::AgentLive& a) {
  out.setName(a.name);
  auto role = parseRole(a.role);
  out.setRole(role ? agent::toProto(*role) : proto::Role::UNKNOWN);
  out.setOnline(a.online);
  out.setCapacity(a.capacity);
  out.setRunning(static_cast<std::uint32_t>(a.tasks.size()));
  auto l = out.initLabels(static_cast<unsigned>(a.labels.size()));
  for (unsigned i = 0; i < a.labels.size(); ++i)
    l.set(i, a.labels[i]);
  out.setLastSeenMs(a.lastSeenMs);
  out.setVersion(a.version);
  out.setDataEndpoint(a.dataEndpoint);
  out.setFreeBytes(a.freeBytes);
}

void fillEvent(proto::JobEvent::Builder out, const JobEventRow& e) {
  out.setSeq(e.seq);
  out.setTimeMs(e.timeMs);
  out.setLevel(agent::toProto(e.level));
  out.setStep(e.step);
  out.setAgent(e.agent);
  out.setMessage(e.message);
}

zmq::message_t errorReply(std::uint64_t requestId, proto::ErrorCode code,
                          const std::string& message) {
  proto::EnvelopeBuilder b;
  auto rep = b.body().initReply();
  rep.setRequestId(requestId);
  auto e = rep.initKind().initError();
  e.setCode(code);
  e.setMessage(message);
  return b.frame();
}

}  // namespace imgpipe::coord
