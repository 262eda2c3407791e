#include "transfer/credit_window.h"

#include <algorithm>

namespace imgpipe::transfer {
namespace {

constexpr double kGrow = 1.15;     // doubling paid off: keep doubling
constexpr double kGain = 1.02;     // a bigger window that helped at least this much is kept
constexpr double kHold = 0.99;     // a smaller window that keeps this much of the rate is enough
constexpr int kSteadyRounds = 16;  // rounds between probes

}  // namespace

CreditWindow::CreditWindow(WindowOptions options)
    : options_(options), window_(std::clamp(options.initial, options.min, options.max)) {}

void CreditWindow::onRequest(std::uint32_t index, std::uint64_t bytes, TimePoint now) {
  if (requests_.count(index)) return;
  requests_[index] = bytes;
  outstanding_ += bytes;
  if (!roundStart_) roundStart_ = now;
  if (outstanding_ + bytes > window_) roundLimited_ = true;
}

void CreditWindow::forgetOutstanding() {
  requests_.clear();
  outstanding_ = 0;
  roundStart_.reset();
  roundBytes_ = 0;
  roundLimited_ = false;
  skipRounds_ = 1;
}

std::vector<std::uint32_t> CreditWindow::outstandingIndices() const {
  std::vector<std::uint32_t> out;
  for (const auto& [index, bytes] : requests_)
    out.push_back(index);
  return out;
}

void CreditWindow::onArrival(std::uint32_t index, TimePoint now) {
  auto it = requests_.find(index);
  if (it == requests_.end()) return;  // a duplicate, or a chunk asked for before a reconnect
  outstanding_ -= std::min(outstanding_, it->second);
  roundBytes_ += it->second;
  requests_.erase(it);
  if (roundStart_ && roundBytes_ >= window_) endRound(now);
}

void CreditWindow::setWindow(std::uint64_t w) {
  w = std::clamp(w, options_.min, options_.max);
  // The round after a change still carries requests made under the old window: not a fair
  // measurement of the new one.
  if (w != window_) skipRounds_ = 1;
  window_ = w;
}

void CreditWindow::endRound(TimePoint now) {
  const double seconds = std::chrono::duration<double>(now - *roundStart_).count();
  const double rate = seconds > 0 ? static_cast<double>(roundBytes_) / seconds : 0;
  const bool limited = roundLimited_;
  roundStart_ = now;
  roundBytes_ = 0;
  roundLimited_ = false;
  if (rate <= 0) return;
  lastRate_ = rate;
  if (skipRounds_ > 0) {
    --skipRounds_;
    return;
  }
  // A round in which the window was never full (paced by the rate limit, or the chunks ran out)
  // says nothing about the window.
  if (!limited) return;

  switch (phase_) {
    case Phase::startup:
      if (referenceRate_ == 0 || rate >= referenceRate_ * kGrow) {
        referenceRate_ = rate;
        referenceWindow_ = window_;
        setWindow(window_ * 2);
        if (window_ == referenceWindow_) phase_ = Phase::steady;
      } else {
        // The link filled up somewhere between the last two windows: keep the bigger one if it
        // helped at all.
        if (rate < referenceRate_ * kGain) setWindow(referenceWindow_);
        referenceRate_ = std::max(referenceRate_, rate);
        phase_ = Phase::steady;
        steadyRounds_ = 0;
      }
      break;
    case Phase::steady:
      referenceRate_ = 0.75 * referenceRate_ + 0.25 * rate;
      if (++steadyRounds_ >= kSteadyRounds) {
        steadyRounds_ = 0;
        referenceWindow_ = window_;
        if (window_ < options_.max) {
          setWindow(window_ + window_ / 4);
          phase_ = Phase::probeUp;
        } else if (window_ > options_.min) {
          setWindow(window_ - window_ / 8);
          phase_ = Phase::probeDown;
        }
      }
      break;
    case Phase::probeUp:
      if (rate >= referenceRate_ * kGrow) {
        referenceRate_ = rate;
        referenceWindow_ = window_;
        setWindow(window_ * 2);
        phase_ = Phase::startup;
      } else if (referenceWindow_ > options_.min) {
        setWindow(referenceWindow_ - referenceWindow_ / 8);
        phase_ = Phase::probeDown;
      } else {
        setWindow(referenceWindow_);
        phase_ = Phase::steady;
      }
      break;
    case Phase::probeDown:
      if (rate < referenceRate_ * kHold) setWindow(referenceWindow_);
      phase_ = Phase::steady;
      break;
  }
}

RateLimiter::RateLimiter(std::uint64_t bytesPerSecond, std::uint64_t burstBytes, TimePoint now)
    : rate_(static_cast<double>(bytesPerSecond)),
      burst_(static_cast<double>(burstBytes)),
      tokens_(static_cast<double>(burstBytes)),
      last_(now) {}

void RateLimiter::refill(TimePoint now) {
  if (now <= last_) return;
  tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
  last_ = now;
}

bool RateLimiter::tryTake(std::uint64_t bytes, TimePoint now) {
  if (unlimited()) return true;
  refill(now);
  // A chunk larger than the burst would never fit: let it go once the bucket is full, and let the
  // balance go negative so the average still holds.
  const double need = std::min(static_cast<double>(bytes), burst_);
  if (tokens_ < need) return false;
  tokens_ -= static_cast<double>(bytes);
  return true;
}

RateLimiter::TimePoint RateLimiter::availableAt(std::uint64_t bytes, TimePoint now) {
  if (unlimited()) return now;
  refill(now);
  const double need = std::min(static_cast<double>(bytes), burst_);
  if (tokens_ >= need) return now;
  return now + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double>((need - tokens_) / rate_));
}

}  // namespace imgpipe::transfer
