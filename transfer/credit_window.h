#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace imgpipe::transfer {

struct WindowOptions {
  std::uint64_t initial = 4 << 20;
  std::uint64_t min = 4 << 20;
  std::uint64_t max = 128 << 20;  // bounds what a sender queues for one receiver
};

// Credit-based flow control counted in bytes (ZeroMQ guide ch. 7), with a window that adapts to
// the path's bandwidth x delay. Pure state machine over explicit time points: the receiver asks
// canRequest() before each chunk request and reports requests, arrivals and losses.
//
// How it adapts — a hill climb on the delivered rate, measured once per round (a window's worth
// of bytes delivered while the window was in use; the round right after a change is not
// counted). A window below the path's bandwidth x delay limits the rate to window/RTT, so
// doubling it raises the rate; once the link is full, a bigger window only queues bytes at the
// sender. So: double while the rate rises by >= 15% per round; when it stops, keep the last
// window that helped. Then every 16 rounds probe 1.25x up (kept when the rate rises) and 0.875x
// down (kept when the rate holds within 1%), so the window follows a path whose rate or delay
// changes, staying near the smallest size that keeps the link full. Round-trip estimates are not
// needed: Little's law makes latency x rate equal to the window whether or not the link is full, so
// latency alone cannot tell the two apart, while the rate's response to a bigger window can.
class CreditWindow {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  explicit CreditWindow(WindowOptions options = {});

  std::uint64_t window() const { return window_; }
  std::uint64_t outstanding() const { return outstanding_; }
  // One chunk may always be outstanding, whatever its size.
  bool canRequest(std::uint64_t bytes) const {
    return outstanding_ == 0 || outstanding_ + bytes <= window_;
  }

  void onRequest(std::uint32_t index, std::uint64_t bytes, TimePoint now);
  // A requested chunk arrived (whatever the verdict on its content).
  void onArrival(std::uint32_t index, TimePoint now);
  // Requests that will never be answered (the connection went away): the round starts over.
  void forgetOutstanding();
  bool isOutstanding(std::uint32_t index) const { return requests_.count(index) != 0; }
  std::vector<std::uint32_t> outstandingIndices() const;

  // Delivered rate of the last complete round, bytes/s.
  double rateBytesPerSecond() const { return lastRate_; }

 private:
  enum class Phase { startup, steady, probeUp, probeDown };
  void endRound(TimePoint now);
  void setWindow(std::uint64_t window);

  WindowOptions options_;
  std::uint64_t window_;
  std::uint64_t outstanding_ = 0;
  std::map<std::uint32_t, std::uint64_t> requests_;  // index -> bytes

  Phase phase_ = Phase::startup;
  std::optional<TimePoint> roundStart_;
  std::uint64_t roundBytes_ = 0;
  bool roundLimited_ = false;  // the window was full at some point during the round
  double lastRate_ = 0;
  double referenceRate_ = 0;  // rate at the window we compare a probe against
  std::uint64_t referenceWindow_ = 0;
  int steadyRounds_ = 0;
  int skipRounds_ = 0;
};

// Token bucket for a per-link bandwidth cap, applied where the receiver issues requests: the
// sender only ever sends what was asked for, so pacing the asks paces the link.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // bytesPerSecond 0: unlimited. The burst allows at least one chunk.
  RateLimiter(std::uint64_t bytesPerSecond, std::uint64_t burstBytes, TimePoint now = Clock::now());

  bool unlimited() const { return rate_ == 0; }
  bool tryTake(std::uint64_t bytes, TimePoint now);
  // When `bytes` will be available (now when they already are).
  TimePoint availableAt(std::uint64_t bytes, TimePoint now);

 private:
  void refill(TimePoint now);

  double rate_;
  double burst_;
  double tokens_;
  TimePoint last_;
};

}  // namespace imgpipe::transfer
