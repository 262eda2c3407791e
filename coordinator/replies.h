#pragma once

#include "coordinator/engine.h"
#include "coordinator/model.h"
#include "protocol/schema/control.capnp.h"

namespace imgpipe::coord {

// Model -> control schema, for replies to operators.
proto::JobState toProto(JobState s);
std::optional<JobState> fromProto(proto::JobState s);
void fillSummary(proto::JobSummary::Builder out, const Job& job);
void fillDetail(proto::JobDetail::Builder out, const Job& job);
void fillAgent(proto::AgentInfo::Builder out, const Engine::AgentLive& agent);
void fillEvent(proto::JobEvent::Builder out, const JobEventRow& e);
// A whole reply envelope: the request `requestId` failed.
zmq::message_t errorReply(std::uint64_t requestId, proto::ErrorCode code,
                          const std::string& message);

}  // namespace imgpipe::coord
