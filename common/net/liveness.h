#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

#include "common/backoff.h"

namespace imgpipe::net {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Paranoid Pirate liveness (ZeroMQ guide, ch. 4), with its reconnect backoff. Plain state
// machines over explicit time points so they are unit-tested without sockets or sleeps.
struct HeartbeatPolicy {
  milliseconds interval{1000};
  int liveness = 3;  // beats missed before the peer is declared dead
  milliseconds reconnectInitial{1000};
  milliseconds reconnectMax{32000};

  milliseconds deadAfter() const { return interval * liveness; }
};

// Whether a peer is alive and when to show it we are: the one liveness of every conversation
// (an agent and its coordinator, both ways; a fetcher and its upstream). Anything heard counts,
// not just heartbeats: a peer that is sending data is alive. Where the path's retransmission
// timeout is known (TCP's own, net::PathTiming), a peer is declared dead only after a silence
// no live path explains: kRtoMultiple RTOs, what three losses in a row of one segment cost TCP
// with its doubling backoff (1 + 2 + 4 RTO), and never before the configured floor. So a long,
// lossy path stretches the timeout and a short one keeps the floor. And where the path is known
// to carry what we send (TCP's ACKs keep arriving, net::PathTiming::sinceLastAck), a silent peer
// is on a path that is up but lossy (its data waiting out retransmission backoff) or is stuck:
// it gets kStuckMultiple times as long before the connection is given up. A path that carries
// nothing at all is what a dead link looks like, and keeps the short timeout. Value type.
class PeerLiveness {
 public:
  static constexpr int kRtoMultiple = 8;
  static constexpr int kStuckMultiple = 6;

  PeerLiveness(milliseconds interval, milliseconds deadAfter, Clock::time_point now)
      : interval_(interval), deadAfter_(deadAfter), lastHeard_(now), lastSent_(now) {}
  explicit PeerLiveness(HeartbeatPolicy policy, Clock::time_point now = Clock::now())
      : PeerLiveness(policy.interval, policy.deadAfter(), now) {}

  // Starts over (a new connection): as if heard from and sent to just now. The path's RTO
  // learnt so far stays: it is the same path.
  void restart(Clock::time_point now) {
    lastHeard_ = lastSent_ = now;
    pathAcked_.reset();
  }
  void heard(Clock::time_point now) { lastHeard_ = now; }
  void sent(Clock::time_point now) { lastSent_ = now; }
  // The path's retransmission timeout, as TCP measures it (without backoff).
  void pathRto(milliseconds rto) { pathRto_ = rto; }
  milliseconds pathRto() const { return pathRto_; }
  // The last moment the path is known to have carried what we sent (an ACK arrived).
  void pathAcked(Clock::time_point when) { pathAcked_ = when; }
  // The silence after which the peer counts as dead, on the path known so far.
  milliseconds deadAfter() const { return std::max(deadAfter_, pathRto_ * kRtoMultiple); }
  bool expired(Clock::time_point now) const {
    const auto silent = now - lastHeard_;
    if (silent <= deadAfter()) return false;
    const bool pathUp = pathAcked_ && now - *pathAcked_ <= deadAfter();
    return !pathUp || silent > deadAfter() * kStuckMultiple;
  }
  bool heartbeatDue(Clock::time_point now) const { return now - lastSent_ >= interval_; }
  Clock::time_point lastHeard() const { return lastHeard_; }
  milliseconds silentFor(Clock::time_point now) const {
    return std::chrono::duration_cast<milliseconds>(now - lastHeard_);
  }

 private:
  milliseconds interval_, deadAfter_;
  milliseconds pathRto_{0};
  std::optional<Clock::time_point> pathAcked_;
  Clock::time_point lastHeard_;
  Clock::time_point lastSent_;
};

using imgpipe::Backoff;  // the reconnect backoff is the one in common/backoff.h

}  // namespace imgpipe::net
