#pragma once

#include <algorithm>
#include <chrono>

namespace imgpipe {

// Delays between attempts: initial, twice that, four times ... capped at max; reset() after a
// success. The one backoff of reconnects, downloads and registrations. Value type.
class Backoff {
 public:
  using milliseconds = std::chrono::milliseconds;
  Backoff(milliseconds initial, milliseconds max) : initial_(initial), max_(max), next_(initial) {}
  milliseconds next() {
    auto current = next_;
    next_ = std::min(max_, next_ * 2);
    return current;
  }
  void reset() { next_ = initial_; }

 private:
  milliseconds initial_, max_, next_;
};

}  // namespace imgpipe
