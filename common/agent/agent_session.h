#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/agent/task_runner.h"
#include "common/net/curve_keys.h"
#include "common/net/liveness.h"
#include "common/net/reactor.h"
#include "common/net/socket_monitor.h"
#include "common/role.h"

namespace imgpipe::agent {

struct SessionOptions {
  Role role = Role::build;
  std::string name;
  unsigned capacity = 1;
  std::vector<std::string> labels;
  std::string dataEndpoint;         // advertised artifact server, "" if none
  std::string coordinatorEndpoint;  // tcp://host:port
  std::string coordinatorKey;       // the coordinator's public key (Z85)
  net::CurveKeyPair keys;
  net::HeartbeatPolicy heartbeat;
  // A reassignable task (a build) is abandoned when the coordinator has been unreachable this
  // long: by then the coordinator has re-queued it elsewhere, and a job must never run twice.
  std::chrono::milliseconds fenceAfter{120'000};
  std::chrono::milliseconds progressInterval{1000};
};

// An agent's connection to the coordinator (a DEALER, Paranoid Pirate style): registers with a
// Hello, heartbeats both ways, reconnects with backoff, runs the tasks it is assigned on their
// own threads through a TaskRunner, and delivers every step boundary and result reliably.
// Lives on the reactor thread; the task threads reach it only through Reactor::post.
class AgentSession {
 public:
  AgentSession(zmq::context_t& context, net::Reactor& reactor, SessionOptions options,
               TaskRunner& runner);
  ~AgentSession();
  AgentSession(const AgentSession&) = delete;
  AgentSession& operator=(const AgentSession&) = delete;

  void start();
  // Stops every task (their threads see a stop request) and waits for them.
  void stopAllTasks(const std::string& reason);

  bool registered() const { return registered_; }
  std::size_t runningTasks() const;
  // Called when the coordinator refuses this agent for good (wrong role, name, version).
  std::function<void(const std::string& reason)> onRefused;

 private:
  class Reporter;
  struct RunningTask {
    TaskSpec spec;
    std::shared_ptr<Reporter> reporter;
    std::unique_ptr<std::jthread> thread;
    bool ended = false;  // run() returned and its final event is queued
    std::string stopReason;
  };
  struct Pending {
    std::string taskId;
    std::uint64_t seq;
    std::string frame;
  };

  void connect();
  void disconnect();
  void tick();
  void onMessage();
  void sendHello();
  void sendFrame(zmq::message_t frame);
  void onAssign(const TaskSpec& spec);
  void onCancel(const std::string& taskId, const std::string& reason);
  void onAck(const std::string& taskId, std::uint64_t seq);
  void enqueue(const std::string& taskId, std::uint64_t seq, bool reliable, zmq::message_t frame);
  void onTaskEnded(const std::string& taskId);
  void fenceIfDisconnectedTooLong();

  zmq::context_t& context_;
  net::Reactor& reactor_;
  SessionOptions options_;
  TaskRunner& runner_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::optional<zmq::socket_t> socket_;
  std::unique_ptr<net::SocketMonitor> monitor_;
  net::PeerLiveness liveness_;
  net::Backoff backoff_;
  net::HeartbeatPolicy heartbeat_;
  bool registered_ = false;
  bool reconnectScheduled_ = false;
  std::chrono::steady_clock::time_point lastContact_;
  std::string coordinatorId_;

  std::map<std::string, RunningTask> tasks_;
  std::deque<Pending> outbox_;  // reliable events not yet acknowledged
};

}  // namespace imgpipe::agent
