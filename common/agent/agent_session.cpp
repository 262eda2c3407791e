#include "common/agent/agent_session.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include "common/agent/wire.h"
#include "common/net/zap_handler.h"
#include "protocol/codec.h"
#include "protocol/id_check.h"

namespace imgpipe::agent {

using Clock = std::chrono::steady_clock;

// Reports of one task. Runs on the task's thread: it encodes events there and posts them to the
// session's reactor thread.
class AgentSession::Reporter : public TaskReporter {
 public:
  Reporter(AgentSession& session, const TaskSpec& spec)
      : session_(&session),
        alive_(session.alive_),
        reactor_(session.reactor_),
        taskId_(spec.taskId),
        jobId_(spec.jobId),
        interval_(session.options_.progressInterval) {}

  void progress(const ProgressInfo& info) override {
    {
      std::lock_guard lock(mutex_);
      auto now = Clock::now();
      // Rate-limit progress, but never drop the first report of a new sub-step or the last one.
      const bool newStep = info.step != lastStep_ || info.state != lastState_;
      const bool finished = info.total > 0 && info.done >= info.total;
      if (!newStep && !finished && now - lastProgress_ < interval_) return;
      lastProgress_ = now;
      lastStep_ = info.step;
      lastState_ = info.state;
    }
    emit(false, [&](proto::TaskEvent::Builder e) {
      auto p = e.getKind().initProgress();
      p.setStep(info.step);
      p.setDone(info.done);
      p.setTotal(info.total);
      p.setRateBps(info.rateBps);
      p.setEtaS(info.etaS);
      p.setAttempt(info.retries);
      p.setState(info.state);
      p.setUnit(info.unit);
    });
  }

  void log(LogLevel level, const std::string& step, const std::string& message,
           std::uint64_t durationMs) override {
    emit(true, [&](proto::TaskEvent::Builder e) {
      auto l = e.getKind().initLog();
      l.setLevel(toProto(level));
      l.setStep(step);
      l.setMessage(message);
      l.setDurationMs(durationMs);
    });
  }

  static void fillChecks(capnp::List<proto::CheckResult>::Builder out,
                         const std::vector<CheckInfo>& checks) {
    for (unsigned i = 0; i < checks.size(); ++i) {
      out[i].setGroup(checks[i].group);
      out[i].setCheck(checks[i].check);
      out[i].setOk(checks[i].ok);
      out[i].setSkipped(checks[i].skipped);
      out[i].setDetail(checks[i].detail);
    }
  }

  void completed(const TaskResultInfo& result) override {
    if (finalSent_.exchange(true)) return;
    emit(true, [&](proto::TaskEvent::Builder e) {
      auto r = e.getKind().initCompleted();
      if (result.artifact) fillArtifact(r.initArtifact(), *result.artifact);
      auto more = r.initMoreArtifacts(static_cast<unsigned>(result.moreArtifacts.size()));
      for (unsigned i = 0; i < result.moreArtifacts.size(); ++i)
        fillArtifact(more[i], result.moreArtifacts[i]);
      r.setGlanceImageId(result.glanceImageId);
      r.setDetail(result.detail);
      fillChecks(r.initChecks(static_cast<unsigned>(result.checks.size())), result.checks);
    });
  }

  void failed(const TaskFailureInfo& f) override {
    if (finalSent_.exchange(true)) return;
    emit(true, [&](proto::TaskEvent::Builder e) {
      auto r = e.getKind().initFailed();
      r.setStep(f.step);
      r.setMessage(f.message);
      r.setExitCode(f.exitCode);
      auto tail = r.initOutputTail(static_cast<unsigned>(f.outputTail.size()));
      for (unsigned i = 0; i < f.outputTail.size(); ++i)
        tail.set(i, f.outputTail[i]);
      r.setRetryable(f.retryable);
      fillChecks(r.initChecks(static_cast<unsigned>(f.checks.size())), f.checks);
    });
  }

  bool finalSent() const { return finalSent_; }

 private:
  template <typename Fill>
  void emit(bool reliable, Fill&& fill) {
    proto::EnvelopeBuilder b;
    auto e = b.body().initTaskEvent();
    const std::uint64_t seq = ++seq_;
    e.setTaskId(taskId_);
    e.setJobId(jobId_);
    e.setSeq(seq);
    e.setReliable(reliable);
    e.setTimeMs(wallClockMs());
    fill(e);
    auto frame = b.frame();
    std::string bytes(frame.data<char>(), frame.size());
    std::weak_ptr<bool> alive = alive_;
    AgentSession* session = session_;
    std::string taskId = taskId_;
    reactor_.post([alive, session, taskId, seq, reliable, bytes = std::move(bytes)]() mutable {
      if (alive.expired()) return;
      session->enqueue(taskId, seq, reliable, zmq::message_t(bytes.data(), bytes.size()));
    });
  }

  AgentSession* session_;
  std::weak_ptr<bool> alive_;
  net::Reactor& reactor_;
  const std::string taskId_, jobId_;
  const std::chrono::milliseconds interval_;
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<bool> finalSent_{false};
  std::mutex mutex_;
  Clock::time_point lastProgress_{};
  std::string lastStep_, lastState_;
};

AgentSession::AgentSession(zmq::context_t& context, net::Reactor& reactor, SessionOptions options,
                           TaskRunner& runner)
    : context_(context),
      reactor_(reactor),
      options_(std::move(options)),
      runner_(runner),
      liveness_(options_.heartbeat),
      backoff_(options_.heartbeat.reconnectInitial, options_.heartbeat.reconnectMax),
      heartbeat_(options_.heartbeat),
      lastContact_(Clock::now()) {}

AgentSession::~AgentSession() {
  stopAllTasks("agent shutting down");
  alive_.reset();
  disconnect();
}

std::size_t AgentSession::runningTasks() const {
  std::size_t n = 0;
  for (const auto& [id, t] : tasks_)
    if (!t.ended) ++n;
  return n;
}

void AgentSession::start() {
  connect();
  // Checked at a quarter of the interval so a dead coordinator is noticed promptly.
  reactor_.every(std::max(std::chrono::milliseconds(50), heartbeat_.interval / 4),
                 [this] { tick(); });
}

void AgentSession::connect() {
  reconnectScheduled_ = false;
  socket_.emplace(context_, zmq::socket_type::dealer);
  net::configureCurveClient(*socket_, options_.keys.publicKey, options_.keys.secretKey,
                            options_.coordinatorKey);
  // Replies queued for a dead connection are worthless; do not let them pile up without bound.
  socket_->set(zmq::sockopt::sndhwm, 10'000);
  socket_->set(zmq::sockopt::immediate, 1);
  // A frame larger than the decoder takes is dropped by ZeroMQ before it is read into memory
  // (issue 23: the agent's control socket had no limit; the decoder's is the one owner of it).
  socket_->set(zmq::sockopt::maxmsgsize,
               static_cast<std::int64_t>(proto::DecodeLimits{}.maxFrameBytes));
  monitor_ = std::make_unique<net::SocketMonitor>(
      context_, reactor_, *socket_, [this](net::SocketMonitor::Event e, const std::string& ep) {
        if (e == net::SocketMonitor::Event::authFailed)
          spdlog::error(
              "coordinator at {} refused our key {} ('{}'): is it listed in the coordinator's "
              "authorized_keys with role {}?",
              ep, options_.keys.publicKey, options_.name, toString(options_.role));
        else if (e == net::SocketMonitor::Event::protocolFailed)
          spdlog::error(
              "CURVE handshake with {} failed: check coordinator_key in this agent's config", ep);
      });
  socket_->connect(options_.coordinatorEndpoint);
  reactor_.addSocket(*socket_, [this] { onMessage(); });
  liveness_ = net::PeerLiveness(heartbeat_);
  sendHello();
  spdlog::info("connecting to coordinator at {} as {} '{}'", options_.coordinatorEndpoint,
               toString(options_.role), options_.name);
}

void AgentSession::disconnect() {
  if (!socket_) return;
  reactor_.removeSocket(*socket_);
  monitor_.reset();
  socket_.reset();
  registered_ = false;
}

void AgentSession::sendFrame(zmq::message_t frame) {
  if (!socket_) return;
  (void)socket_->send(frame, zmq::send_flags::dontwait);
}

void AgentSession::sendHello() {
  proto::EnvelopeBuilder b;
  auto h = b.body().initHello();
  h.setRole(toProto(options_.role));
  h.setName(options_.name);
  h.setVersion(IMGPIPE_VERSION);
  h.setCapacity(options_.capacity);
  auto labels = h.initLabels(static_cast<unsigned>(options_.labels.size()));
  for (unsigned i = 0; i < options_.labels.size(); ++i)
    labels.set(i, options_.labels[i]);
  h.setDataEndpoint(options_.dataEndpoint);
  // A task whose result is still unacknowledged counts as active: the coordinator must not
  // re-issue it, the result follows right after the Welcome.
  auto active = h.initActiveTasks(static_cast<unsigned>(tasks_.size()));
  unsigned i = 0;
  for (const auto& [id, t] : tasks_)
    active.set(i++, id);
  h.setFreeBytes(runner_.freeBytes());
  auto inventory = runner_.inventory();
  auto inv = h.initInventory(static_cast<unsigned>(inventory.size()));
  for (unsigned j = 0; j < inventory.size(); ++j)
    fillArtifact(inv[j], inventory[j]);
  sendFrame(b.frame());
  liveness_.sent(Clock::now());
}

void AgentSession::tick() {
  const auto now = Clock::now();
  fenceIfDisconnectedTooLong();
  if (reconnectScheduled_) return;
  if (liveness_.expired(now)) {
    auto delay = backoff_.next();
    spdlog::warn(
        "coordinator at {} silent for {} ms; reconnecting in {} ms", options_.coordinatorEndpoint,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - liveness_.lastHeard()).count(),
        delay.count());
    disconnect();
    reconnectScheduled_ = true;
    reactor_.after(delay, [this] { connect(); });
    return;
  }
  if (liveness_.heartbeatDue(now)) {
    if (registered_) {
      proto::EnvelopeBuilder b;
      b.body().setHeartbeat();
      sendFrame(b.frame());
    } else {
      sendHello();  // not welcomed yet: the Hello is our heartbeat
    }
    liveness_.sent(now);
  }
}

void AgentSession::onMessage() {
  for (;;) {
    if (!socket_) return;
    zmq::message_t frame;
    if (!socket_->recv(frame, zmq::recv_flags::dontwait)) return;
    const auto now = Clock::now();
    auto decoded = proto::decodeEnvelope(frame);
    if (auto* err = std::get_if<std::string>(&decoded)) {
      spdlog::warn("dropped a message from the coordinator: {}", *err);
      continue;
    }
    auto& msg = std::get<0>(decoded);
    auto env = msg->root();
    if (auto mismatch = proto::checkVersion(env.getMajor(), env.getMinor())) {
      spdlog::error("coordinator: {}", *mismatch);
      if (onRefused) onRefused(*mismatch);
      return;
    }
    if (auto bad = proto::checkIds(env)) {
      spdlog::warn("dropped a message from the coordinator: {}", *bad);
      continue;
    }
    liveness_.heard(now);
    lastContact_ = now;
    auto body = env.getBody();
    switch (body.which()) {
      case proto::Envelope::Body::WELCOME: {
        auto w = body.getWelcome();
        const bool first = !registered_;
        registered_ = true;
        backoff_.reset();
        coordinatorId_ = w.getCoordinatorId();
        if (w.getHeartbeatIntervalMs() > 0)
          heartbeat_.interval = std::chrono::milliseconds(w.getHeartbeatIntervalMs());
        if (w.getLiveness() > 0) heartbeat_.liveness = static_cast<int>(w.getLiveness());
        liveness_ = net::PeerLiveness(heartbeat_, now);
        if (first)
          spdlog::info("registered with coordinator {} ({} unacknowledged events to resend)",
                       coordinatorId_, outbox_.size());
        for (const auto& p : outbox_)
          sendFrame(zmq::message_t(p.frame.data(), p.frame.size()));
        break;
      }
      case proto::Envelope::Body::REFUSED: {
        std::string reason = body.getRefused().getReason();
        spdlog::error("coordinator refused this agent: {}", reason);
        if (onRefused) onRefused(reason);
        return;
      }
      case proto::Envelope::Body::HEARTBEAT:
        if (!registered_) sendHello();
        break;
      case proto::Envelope::Body::SAY_HELLO:
        // The coordinator restarted while our connection survived: register again, after which
        // the Welcome re-sends every unacknowledged event.
        registered_ = false;
        sendHello();
        break;
      case proto::Envelope::Body::ASSIGN_TASK:
        onAssign(toTaskSpec(body.getAssignTask()));
        break;
      case proto::Envelope::Body::CANCEL_TASK:
        onCancel(body.getCancelTask().getTaskId(), body.getCancelTask().getReason());
        break;
      case proto::Envelope::Body::TASK_EVENT_ACK:
        onAck(body.getTaskEventAck().getTaskId(), body.getTaskEventAck().getSeq());
        break;
      case proto::Envelope::Body::GRANT:
        runner_.onGrant(toGrantSpec(body.getGrant()));
        break;
      default:
        spdlog::warn("ignored an unexpected message from the coordinator (kind {})",
                     static_cast<int>(body.which()));
    }
  }
}

void AgentSession::onAssign(const TaskSpec& spec) {
  if (tasks_.count(spec.taskId)) return;  // re-sent after a reconnect; already ours
  auto log = spdlog::default_logger();
  if (runningTasks() >= options_.capacity) {
    spdlog::warn("job={} refused task {}: at capacity ({})", spec.jobId, spec.taskId,
                 options_.capacity);
    auto reporter = std::make_shared<Reporter>(*this, spec);
    reporter->failed({spec.step, "agent " + options_.name + " is at capacity", 0, {}, true});
    return;
  }
  spdlog::info("job={} step={} task {} assigned (attempt {})", spec.jobId, spec.step, spec.taskId,
               spec.attempt);
  auto& t = tasks_[spec.taskId];
  t.spec = spec;
  t.reporter = std::make_shared<Reporter>(*this, spec);
  std::weak_ptr<bool> alive = alive_;
  t.thread = std::make_unique<std::jthread>(
      [this, alive, spec, reporter = t.reporter](std::stop_token stop) {
        try {
          runner_.run(spec, *reporter, stop);
          if (!reporter->finalSent()) {
            reporter->failed({spec.step,
                              stop.stop_requested() ? "task stopped before it finished"
                                                    : "task ended without reporting a result",
                              0,
                              {},
                              stop.stop_requested()});
          }
        } catch (const std::exception& e) {
          reporter->failed({spec.step, e.what(), 0, {}, false});
        }
        reactor_.post([this, alive, id = spec.taskId] {
          if (!alive.expired()) onTaskEnded(id);
        });
      });
}

void AgentSession::onTaskEnded(const std::string& taskId) {
  auto it = tasks_.find(taskId);
  if (it == tasks_.end()) return;
  it->second.ended = true;
  // Forget the task once nothing about it waits for an acknowledgement.
  bool pending = false;
  for (const auto& p : outbox_)
    pending |= p.taskId == taskId;
  if (!pending) tasks_.erase(it);
}

void AgentSession::onCancel(const std::string& taskId, const std::string& reason) {
  auto it = tasks_.find(taskId);
  if (it == tasks_.end() || it->second.ended) return;
  spdlog::info("job={} task {} cancelled by the coordinator: {}", it->second.spec.jobId, taskId,
               reason);
  it->second.stopReason = reason;
  it->second.thread->request_stop();
}

void AgentSession::onAck(const std::string& taskId, std::uint64_t seq) {
  std::erase_if(outbox_, [&](const Pending& p) { return p.taskId == taskId && p.seq <= seq; });
  auto it = tasks_.find(taskId);
  if (it != tasks_.end() && it->second.ended) onTaskEnded(taskId);
}

void AgentSession::enqueue(const std::string& taskId, std::uint64_t seq, bool reliable,
                           zmq::message_t frame) {
  if (reliable) outbox_.push_back({taskId, seq, std::string(frame.data<char>(), frame.size())});
  if (registered_) sendFrame(std::move(frame));
}

void AgentSession::fenceIfDisconnectedTooLong() {
  if (registered_ || Clock::now() - lastContact_ < options_.fenceAfter) return;
  for (auto& [id, t] : tasks_) {
    if (t.ended || !t.spec.reassignable() || t.thread->get_stop_token().stop_requested()) continue;
    spdlog::warn(
        "job={} step={} abandoning task {}: coordinator unreachable for over {} s, so it "
        "has been re-queued elsewhere",
        t.spec.jobId, t.spec.step, id, options_.fenceAfter.count() / 1000);
    t.thread->request_stop();
  }
}

void AgentSession::stopAllTasks(const std::string& reason) {
  for (auto& [id, t] : tasks_) {
    if (t.ended) continue;
    t.stopReason = reason;
    t.thread->request_stop();
  }
  for (auto& [id, t] : tasks_)
    if (t.thread && t.thread->joinable()) t.thread->join();
}

}  // namespace imgpipe::agent
