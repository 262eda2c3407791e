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

class PeerLiveness {
 public:
  explicit PeerLiveness(HeartbeatPolicy policy, Clock::time_point now = Clock::now())
      : policy_(policy), lastHeard_(now), lastSent_(now) {}

  void heard(Clock::time_point now) { lastHeard_ = now; }
  void sent(Clock::time_point now) { lastSent_ = now; }
  bool expired(Clock::time_point now) const { return now - lastHeard_ > policy_.deadAfter(); }
  bool heartbeatDue(Clock::time_point now) const { return now - lastSent_ >= policy_.interval; }
  Clock::time_point lastHeard() const { return lastHeard_; }

 private:
  HeartbeatPolicy policy_;
  Clock::time_point lastHeard_;
  Clock::time_point lastSent_;
};

using imgpipe::Backoff;  // the reconnect backoff is the one in common/backoff.h

}  // namespace imgpipe::net
