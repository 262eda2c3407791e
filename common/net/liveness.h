#pragma once

#include <algorithm>
#include <chrono>

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
// not just heartbeats: a peer that is sending data is alive. Value type.
class PeerLiveness {
 public:
  PeerLiveness(milliseconds interval, milliseconds deadAfter, Clock::time_point now)
      : interval_(interval), deadAfter_(deadAfter), lastHeard_(now), lastSent_(now) {}
  explicit PeerLiveness(HeartbeatPolicy policy, Clock::time_point now = Clock::now())
      : PeerLiveness(policy.interval, policy.deadAfter(), now) {}

  // Starts over (a new connection): as if heard from and sent to just now.
  void restart(Clock::time_point now) { lastHeard_ = lastSent_ = now; }
  void heard(Clock::time_point now) { lastHeard_ = now; }
  void sent(Clock::time_point now) { lastSent_ = now; }
  bool expired(Clock::time_point now) const { return now - lastHeard_ > deadAfter_; }
  bool heartbeatDue(Clock::time_point now) const { return now - lastSent_ >= interval_; }
  Clock::time_point lastHeard() const { return lastHeard_; }
  milliseconds silentFor(Clock::time_point now) const {
    return std::chrono::duration_cast<milliseconds>(now - lastHeard_);
  }

 private:
  milliseconds interval_, deadAfter_;
  Clock::time_point lastHeard_;
  Clock::time_point lastSent_;
};

using imgpipe::Backoff;  // the reconnect backoff is the one in common/backoff.h

}  // namespace imgpipe::net
