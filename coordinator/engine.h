#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>
#include <zmq.hpp>

#include "common/agent/wire.h"
#include "common/net/authorized_keys.h"
#include "common/net/liveness.h"
#include "common/net/zap_handler.h"
#include "coordinator/check_workers.h"
#include "coordinator/model.h"
#include "coordinator/store.h"
#include "coordinator/topology.h"
#include "definition/bundle.h"
#include "protocol/schema/control.capnp.h"

namespace imgpipe::coord {

// How the engine reaches peers. The server implements it over its ROUTER socket; tests can
// record what would be sent.
class Outbound {
 public:
  virtual ~Outbound() = default;
  // false when the peer is gone (its connection closed).
  virtual bool send(const std::string& routingId, zmq::message_t frame) = 0;
};

// Time as the engine sees it: steady time for liveness and grace periods, wall time for what it
// stores and shows (and the versions it derives). The server passes the system's clocks; tests
// pass their own and move them.
struct EngineClock {
  std::function<std::chrono::steady_clock::time_point()> steady = [] {
    return std::chrono::steady_clock::now();
  };
  std::function<std::int64_t()> wallMs = [] { return agent::wallClockMs(); };
};

// Shorter than the imgpipe CLI's default --timeout (10 s), so the operator hears why.
inline constexpr std::chrono::milliseconds kDefinitionCheckTimeout{5'000};

struct EngineOptions {
  EngineClock clock;
  net::HeartbeatPolicy heartbeat;
  std::chrono::milliseconds buildGrace{60'000};
  unsigned maxAttempts = 3;
  std::chrono::milliseconds retryDelay{5'000};
  Topology topology;
  // Validates a submitted definition and its bundle; returns {name, version ("" = derive)} or
  // throws Error.
  DefinitionInspector inspectDefinition = coord::inspectDefinition;
  // Runs a function on the engine's thread soon; thread-safe (the reactor's post). Definition
  // checks run on threads of their own and hand their results back through it.
  CheckWorkers::Post post;
  // A submit whose check takes longer is refused (coordinator config definition_check_timeout).
  std::chrono::milliseconds definitionCheckTimeout = kDefinitionCheckTimeout;
  // Checks running at once, the ones given up on included; a submit beyond them is refused.
  unsigned maxDefinitionChecks = 2;
};

struct EngineCounters {
  std::uint64_t unexpectedMessages = 0;
  std::uint64_t refusedHellos = 0;
  std::uint64_t revokedKeyFrames = 0;  // frames from a key no longer in authorized_keys
  std::uint64_t invalidIds = 0;        // messages refused for a malformed identifier
  std::uint64_t jobsSubmitted = 0;
  std::uint64_t tasksAssigned = 0;
  std::uint64_t requeuedBuilds = 0;
  std::map<std::string, std::uint64_t> stepResults;  // "build/done", "fetch/failed", ...
  std::map<std::pair<std::string, std::string>, std::uint64_t> linkBytes;  // (from, to) -> bytes
  std::map<std::string, std::uint64_t> jobsFinished;                       // state -> count
};

// The coordinator's brain: agents, jobs and their steps, scheduling, routing, retries. Runs on
// the event loop thread; every input is a message or a tick, every output goes through
// Outbound. State changes are committed to the Store before they are acknowledged to anyone.
class Engine {
 public:
  using Clock = std::chrono::steady_clock;

  Engine(Store& store, net::AuthorizedKeysFile& keys, EngineOptions options, Outbound& out);

  void onMessage(const std::string& routingId, const net::PeerIdentity& who,
                 proto::Envelope::Reader env);
  void onTick();

  const EngineCounters& counters() const { return counters_; }
  // Current transfer rate per link (from, to), summed over running hops.
  std::map<std::pair<std::string, std::string>, std::uint64_t> linkRates() const;
  // Durations of finished build sub-steps since the last call: (sub-step, seconds).
  std::vector<std::pair<std::string, double>> drainStepDurations();
  std::map<JobState, std::size_t> jobsByState() const;
  std::size_t queuedJobs() const;
  // Connections that watch some job, by the key each asked with.
  std::size_t watchingConnections() const { return watcherKeys_.size(); }
  struct AgentLive;
  const std::map<std::string, AgentLive>& agents() const { return agents_; }

  struct AgentLive {
    std::string name;
    std::string role;
    std::vector<std::string> labels;
    unsigned capacity = 0;
    std::string version, dataEndpoint;
    std::uint64_t freeBytes = 0;
    std::vector<agent::ArtifactInfo> inventory;
    std::string routingId;
    std::string key;  // the key this session was opened with
    bool online = false;
    net::PeerLiveness liveness{net::HeartbeatPolicy{}, Clock::time_point{}};
    Clock::time_point lostAt{};
    std::int64_t lastSeenMs = 0;
    std::set<std::string> tasks;  // task ids the coordinator believes run there
  };

 private:
  // agents (engine.cpp)
  void onHello(const std::string& routingId, const net::PeerIdentity& who,
               proto::Hello::Reader hello);
  void markLost(AgentLive& agent, const std::string& why);
  // authorized_keys changed: sessions whose key is gone or replaced end now (keys.cpp).
  void enforceKeys();
  // Ends the watches of connections whose operator key is no longer in authorized_keys, and
  // forgets the keys of connections that watch nothing any more (every tick: a CLI that went
  // away leaves nothing behind).
  void endRevokedWatches(const net::AuthorizedKeys& keys);
  void endSession(AgentLive& agent, const std::string& why);
  bool frameKeyAuthorized(const std::string& routingId, const net::PeerIdentity& who,
                          proto::Envelope::Reader env);
  void onInvalidIds(AgentLive& agent, proto::Envelope::Reader env, const std::string& problem);
  void sendTo(AgentLive& agent, zmq::message_t frame);
  void refuse(const std::string& routingId, const std::string& reason);
  void reply(const std::string& routingId, zmq::message_t frame);
  class Batch;
  void dispatch(const std::string& routingId, const net::PeerIdentity& who,
                proto::Envelope::Reader env);
  void tick();

  // jobs (jobs.cpp)
  void onTaskEvent(AgentLive& agent, proto::TaskEvent::Reader e);
  void onTaskCompleted(Job& job, Step& step, proto::TaskResult::Reader r);
  void onTaskFailed(Job& job, Step& step, proto::TaskFailure::Reader f);
  void advance(Job& job);
  void schedule();
  void enqueue(const Job& job);
  void dequeue(const Job& job);
  bool assignBuild(Job& job, AgentLive& agent);
  void startFetch(Job& job, Step& step);
  void startRegister(Job& job, Step& step);
  void sendTask(Job& job, Step& step, AgentLive& agent);
  void grantUpstream(const Job& job, const Step& fetch, bool revoke = false,
                     const std::string& peerKey = {});
  void planDelivery(Job& job);
  void failJob(Job& job, const std::string& error);
  void finishJob(Job& job, JobState state);
  void cancelRunningSteps(Job& job, const std::string& reason);
  void requeueBuild(Job& job, Step& step, const std::string& why);
  void retryLater(Job& job, Step& step, const std::string& why);
  void event(Job& job, agent::LogLevel level, const std::string& step, const std::string& agentName,
             const std::string& message, std::int64_t timeMs = 0);
  void persist(Job& job, Step* step = nullptr);
  void flushProgress();
  void touched(Job& job);
  Job* activeJob(std::int64_t id);
  AgentLive* agentNamed(const std::string& name);

  // operators (operator_api.cpp)
  void onRequest(const std::string& routingId, const net::PeerIdentity& who,
                 proto::OperatorRequest::Reader r);
  // A SUBMIT whose definition is being checked (check_workers.h): answered when its plan comes
  // back (onPlanned), or refused by expireChecks when it takes too long.
  struct PendingSubmit {
    std::string routingId;
    std::uint64_t requestId = 0;
    std::string operatorName;
    int priority = 0;
    std::vector<std::string> labels;
    Clock::time_point deadline;
  };
  void startSubmit(const std::string& routingId, const net::PeerIdentity& who,
                   std::uint64_t requestId, proto::SubmitRequest::Reader s);
  void onPlanned(std::uint64_t check, SubmissionPlan plan);
  void answerSubmit(const PendingSubmit& submit, SubmissionPlan& plan);
  void expireChecks();
  void pushWatchers();

  Store& store_;
  net::AuthorizedKeysFile& keys_;
  EngineOptions options_;
  Outbound& out_;
  EngineCounters counters_;
  Clock::time_point now() const { return options_.clock.steady(); }
  std::int64_t nowMs() const { return options_.clock.wallMs(); }
  Clock::time_point startedAt_;
  std::uint64_t keysGeneration_ = 0;  // of keys_, when sessions were last checked against it

  std::map<std::string, AgentLive> agents_;
  std::map<std::int64_t, Job> active_;  // every non-terminal job
  // Builds waiting for an agent, one FIFO-within-priority lane per set of required labels, so
  // placing a job costs the number of distinct label sets, not the length of the queue.
  using Lane = std::set<std::tuple<int, std::int64_t>>;  // (-priority, id)
  std::map<std::vector<std::string>, Lane> lanes_;
  std::map<std::string, std::pair<std::int64_t, int>> tasks_;  // task id -> (job, step)
  std::set<std::pair<std::int64_t, int>> dirtyProgress_;       // steps whose progress is unsaved
  Clock::time_point lastFlush_;
  std::map<std::int64_t, std::set<std::string>> watchers_;  // job -> routing ids
  // The key each watching connection asked with: a key taken out of authorized_keys ends its
  // watches with the session (enforceKeys), as it ends an agent's.
  std::map<std::string, std::string> watcherKeys_;  // routing id -> key
  std::set<std::int64_t> changed_;                  // jobs to push to watchers
  std::vector<std::pair<std::string, double>> stepDurations_;
  // While an input is handled, sends wait here until its writes are committed.
  bool batching_ = false;
  std::vector<std::pair<std::string, zmq::message_t>> pending_;
  std::map<std::uint64_t, PendingSubmit> checking_;  // check -> its submit
  std::uint64_t nextCheck_ = 1;
  // Last, so it is destroyed first: no check's result arrives once the rest is gone.
  CheckWorkers checks_;
};

}  // namespace imgpipe::coord
