#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

namespace imgpipe {

// The rate and ETA of a count that grows (bytes fetched, hashed, uploaded): an exponentially
// weighted rate over samples at least 200 ms apart, so that one slow second moves it without
// zeroing it. Every progress report of every role uses this one. Time is passed in. Value type.
class RateMeter {
 public:
  using Clock = std::chrono::steady_clock;

  // A new phase: the next sample is the new base.
  void reset() {
    rate_ = 0;
    last_.reset();
  }

  void sample(std::uint64_t done, Clock::time_point now) {
    if (!last_) {
      last_ = {now, done};
      return;
    }
    const double dt = std::chrono::duration<double>(now - last_->first).count();
    if (dt < 0.2) return;
    const double inst = done >= last_->second ? static_cast<double>(done - last_->second) / dt : 0;
    rate_ = rate_ == 0 ? inst : 0.7 * rate_ + 0.3 * inst;
    last_ = {now, done};
  }

  std::uint64_t perSecond() const { return static_cast<std::uint64_t>(rate_); }

  // Seconds until `total` at the current rate; 0 when there is no rate yet.
  std::uint32_t etaSeconds(std::uint64_t done, std::uint64_t total) const {
    return rate_ > 1 && total > done ? static_cast<std::uint32_t>((total - done) / rate_) : 0;
  }

 private:
  double rate_ = 0;
  std::optional<std::pair<Clock::time_point, std::uint64_t>> last_;
};

}  // namespace imgpipe
