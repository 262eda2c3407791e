#include "coordinator/model.h"

#include <array>

namespace imgpipe::coord {
namespace {

constexpr std::array<std::string_view, 7> kJobStates = {
    "queued", "building", "transferring", "registering", "done", "failed", "cancelled"};
constexpr std::array<std::string_view, 6> kStepStates = {"pending", "running",   "done",
                                                         "failed",  "cancelled", "waiting"};
constexpr std::array<std::string_view, 3> kStepKinds = {"build", "fetch", "register"};

template <typename E, size_t N>
std::optional<E> parseEnum(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}

}  // namespace

std::string_view toString(JobState s) {
  return kJobStates[static_cast<size_t>(s)];
}
std::string_view toString(StepState s) {
  return kStepStates[static_cast<size_t>(s)];
}
std::string_view toString(StepKind k) {
  return kStepKinds[static_cast<size_t>(k)];
}
std::optional<JobState> parseJobState(std::string_view s) {
  return parseEnum<JobState>(kJobStates, s);
}
std::optional<StepState> parseStepState(std::string_view s) {
  return parseEnum<StepState>(kStepStates, s);
}
std::optional<StepKind> parseStepKind(std::string_view s) {
  return parseEnum<StepKind>(kStepKinds, s);
}

bool isTerminal(JobState s) {
  return s == JobState::done || s == JobState::failed || s == JobState::cancelled;
}

std::string outputSuffix(definition::OutputKind kind) {
  return kind == definition::OutputKind::qcow2 ? "" : " " + std::string(definition::toString(kind));
}

std::string Job::location() const {
  if (isTerminal(state)) return std::string(toString(state));
  std::string where;
  for (const auto& s : steps) {
    if (s.state != StepState::running && s.state != StepState::waiting) continue;
    std::string part;
    switch (s.kind) {
      case StepKind::build:
        part = "building on " + s.agent;
        break;
      case StepKind::fetch:
        part = s.upstream + " -> " + s.agent;
        if (auto kind = s.outputKind()) part += outputSuffix(*kind);
        break;
      case StepKind::register_:
        part = "registering at " + s.agent;
        break;
    }
    if (s.total > 0) part += " (" + std::to_string(s.done * 100 / s.total) + "%)";
    if (s.state == StepState::waiting)
      part += " [agent lost]";
    else if (!s.detail.empty() && s.kind != StepKind::build)
      part += " [" + s.detail + "]";
    where += (where.empty() ? "" : ", ") + part;
  }
  if (where.empty()) return state == JobState::queued ? "waiting for a build agent" : "waiting";
  return where;
}

const agent::ArtifactInfo* Job::artifactOf(definition::OutputKind kind) const {
  if (artifact && definition::parseOutputField(artifact->kind) == kind) return &*artifact;
  for (const auto& a : moreArtifacts)
    if (definition::parseOutputField(a.kind) == kind) return &a;
  return nullptr;
}

const agent::ArtifactInfo* Job::artifactFor(const Step& step) const {
  const auto kind = step.outputKind();
  return kind ? artifactOf(definition::carrierOf(*kind)) : nullptr;
}

}  // namespace imgpipe::coord
