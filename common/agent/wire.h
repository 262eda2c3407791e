#pragma once

#include "common/agent/task.h"
#include "common/role.h"
#include "protocol/schema/control.capnp.h"

namespace imgpipe::agent {

// Conversions between the control schema and the task value types.
TaskSpec toTaskSpec(proto::Task::Reader task);
void fillTask(proto::Task::Builder out, const TaskSpec& spec);
GrantSpec toGrantSpec(proto::Grant::Reader grant);

ArtifactInfo toArtifactInfo(proto::ArtifactSummary::Reader a);
void fillArtifact(proto::ArtifactSummary::Builder out, const ArtifactInfo& a);

proto::Role toProto(Role role);
std::optional<Role> fromProto(proto::Role role);
proto::LogLevel toProto(LogLevel level);

std::int64_t wallClockMs();

}  // namespace imgpipe::agent
