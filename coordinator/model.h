#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/agent/task.h"
#include "definition/outputs.h"

namespace imgpipe::coord {

// Value types of the coordinator's state, as stored in SQLite and held in memory.

enum class JobState { queued, building, transferring, registering, done, failed, cancelled };
enum class StepState { pending, running, done, failed, cancelled, waiting };
enum class StepKind { build, fetch, register_ };

std::string_view toString(JobState s);
std::string_view toString(StepState s);
std::string_view toString(StepKind k);
std::optional<JobState> parseJobState(std::string_view s);
std::optional<StepState> parseStepState(std::string_view s);
std::optional<StepKind> parseStepKind(std::string_view s);
bool isTerminal(JobState s);

// How a step's name and its place in `imgpipe list` name the output it moves or registers:
// nothing for the qcow2 (as every step was named before outputs), " iso", " raw" otherwise.
std::string outputSuffix(definition::OutputKind kind);

struct Step {
  int index = 0;
  std::string name;  // "build", "hop build-1 -> relay-1", "register ctrl-a"
  StepKind kind = StepKind::build;
  std::string agent;     // who runs it ("" for a build not yet assigned)
  std::string upstream;  // fetch: the agent it pulls from
  StepState state = StepState::pending;
  std::uint32_t attempt = 0;
  std::string taskId;
  std::string detail;  // current sub-step or "stalled"/"retrying"
  std::uint64_t done = 0, total = 0, rateBps = 0;
  std::uint32_t etaS = 0, retries = 0;
  std::string unit;  // of done/total: "" (bytes), "seconds", "permille"
  std::string error;
  std::int64_t startedMs = 0, finishedMs = 0;
  std::uint64_t lastReliableSeq = 0, lastProgressSeq = 0;
  // register: the Glance image id; build: the image's checks as a JSON array of {group, check,
  // ok, skipped, detail} (what `imgpipe show` lists), kept in the same column.
  std::string result;
  std::int64_t notBeforeMs = 0;  // retry backoff
  // register: the output kind it registers; fetch: the artifact it carries, by its output kind
  // ("" = qcow2, as every step before 0.4 meant; definition::parseOutputField)
  std::string output;

  // nullopt for an output this coordinator does not know (a record of a newer one).
  std::optional<definition::OutputKind> outputKind() const {
    return definition::parseOutputField(output);
  }
};

struct Job {
  std::int64_t id = 0;
  std::string imageName, imageVersion;
  std::string definitionName, definitionDigest;
  std::vector<std::string> targets;  // controller agent names
  std::vector<std::string> labels;
  int priority = 0;
  JobState state = JobState::queued;
  std::string error;
  std::int64_t createdMs = 0, updatedMs = 0;
  std::optional<agent::ArtifactInfo> artifact;     // the qcow2
  std::vector<agent::ArtifactInfo> moreArtifacts;  // the other outputs carried on their own (iso)
  std::vector<Step> steps;

  std::string idText() const { return std::to_string(id); }
  Step* step(int index) {
    return index >= 0 && index < static_cast<int>(steps.size()) ? &steps[index] : nullptr;
  }
  // "building on build-1", "relay-1 -> ctrl-a (42%)", "registering at ctrl-a"
  std::string location() const;
  // The artifact that is the file of `kind` (qcow2 or iso: a carrier, definition/outputs.h), or
  // null when the build made none.
  const agent::ArtifactInfo* artifactOf(definition::OutputKind kind) const;
  // The artifact a fetch step carries or a register step makes its output from.
  const agent::ArtifactInfo* artifactFor(const Step& step) const;
};

struct JobEventRow {
  std::uint64_t seq = 0;
  std::int64_t timeMs = 0;
  agent::LogLevel level = agent::LogLevel::info;
  std::string step, agent, message;
};

}  // namespace imgpipe::coord
