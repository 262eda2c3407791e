#include "transfer/credit_window.h"

#include <gtest/gtest.h>

#include <map>
#include <queue>

using namespace imgpipe::transfer;
using namespace std::chrono;

namespace {

// A receiver pulling chunks over a path with capacity `bytesPerSecond` and `oneWay` delay each
// way, through a FIFO sender: the credit window decides how much is asked for at any time.
struct PathSim {
  double capacity;
  duration<double> oneWay;
  std::uint64_t chunk = 1 << 20;
  CreditWindow window;
  std::uint64_t maxWindow = 0;

  struct Result {
    double rate;  // over the second half of the run
    std::uint64_t finalWindow;
  };

  Result run(std::uint64_t totalBytes) {
    using T = CreditWindow::TimePoint;
    T now{};
    T linkFreeAt{};
    std::priority_queue<std::pair<T, std::uint32_t>, std::vector<std::pair<T, std::uint32_t>>,
                        std::greater<>>
        arrivals;
    std::uint32_t next = 0;
    const auto chunks = static_cast<std::uint32_t>(totalBytes / chunk);
    auto issue = [&] {
      while (next < chunks && window.canRequest(chunk)) {
        window.onRequest(next, chunk, now);
        const T atSender = now + duration_cast<T::duration>(oneWay);
        const T start = std::max(atSender, linkFreeAt);
        linkFreeAt = start + duration_cast<T::duration>(duration<double>(chunk / capacity));
        arrivals.push({linkFreeAt + duration_cast<T::duration>(oneWay), next});
        ++next;
      }
    };
    issue();
    std::uint32_t done = 0;
    T halfAt{};
    while (!arrivals.empty()) {
      auto [at, index] = arrivals.top();
      arrivals.pop();
      now = at;
      window.onArrival(index, now);
      maxWindow = std::max(maxWindow, window.window());
      if (++done == chunks / 2) halfAt = now;
      issue();
    }
    const double secs = duration<double>(now - halfAt).count();
    return {static_cast<double>(chunks - chunks / 2) * chunk / secs, window.window()};
  }
};

}  // namespace

TEST(CreditWindow, FillsAPathWithTensOfMegabytesInFlight) {
  // 1 Gbit/s and 200 ms round trip: 25 MB must be in flight to keep the link busy.
  PathSim sim{125e6, milliseconds(100), 1 << 20, CreditWindow({4 << 20, 4 << 20, 128 << 20})};
  auto r = sim.run(4ull << 30);
  EXPECT_GT(r.rate, 0.9 * 125e6) << "window " << r.finalWindow;
  std::printf("1 Gbit/s x 200 ms: %.1f%% of the link, window %.1f MiB (max seen %.1f MiB)\n",
              r.rate / 125e6 * 100, r.finalWindow / 1048576.0, sim.maxWindow / 1048576.0);
  EXPECT_GE(r.finalWindow, 25'000'000u);
  EXPECT_LE(sim.maxWindow, 128u << 20) << "memory stays bounded";
}

TEST(CreditWindow, StaysSmallOnAShortPath) {
  // 40 Mbit/s and ~1 ms: the minimum window already keeps the link busy; growing it would only
  // queue bytes (and delay pings) at the sender.
  PathSim sim{5e6, microseconds(500), 1 << 20, CreditWindow({4 << 20, 4 << 20, 128 << 20})};
  auto r = sim.run(400u << 20);
  EXPECT_GT(r.rate, 0.97 * 5e6);
  EXPECT_LE(sim.maxWindow, 8u << 20);
  EXPECT_LE(r.finalWindow, 6u << 20);
}

TEST(CreditWindow, IsBoundedByItsMaximum) {
  PathSim sim{1e9, milliseconds(250), 1 << 20, CreditWindow({4 << 20, 4 << 20, 32 << 20})};
  sim.run(2ull << 30);
  EXPECT_LE(sim.maxWindow, 32u << 20);
}

TEST(CreditWindow, AlwaysAllowsOneChunkAndForgetsWhatALostConnectionHeld) {
  CreditWindow w({1 << 20, 1 << 20, 1 << 20});
  const auto t = CreditWindow::TimePoint{};
  EXPECT_TRUE(w.canRequest(8 << 20)) << "a chunk larger than the window must still go";
  w.onRequest(0, 8 << 20, t);
  EXPECT_FALSE(w.canRequest(1));
  w.onRequest(1, 1, t);  // the caller may ignore the window; bookkeeping still holds
  EXPECT_EQ(w.outstandingIndices(), (std::vector<std::uint32_t>{0, 1}));
  w.forgetOutstanding();
  EXPECT_EQ(w.outstanding(), 0u);
  EXPECT_TRUE(w.canRequest(1 << 20));
  w.onArrival(0, t);  // a late arrival from the old connection is harmless
  EXPECT_EQ(w.outstanding(), 0u);
}

TEST(RateLimiter, PacesToTheConfiguredRate) {
  const auto t0 = RateLimiter::TimePoint{};
  RateLimiter r(1'000'000, 1 << 20, t0);  // 1 MB/s, 1 MiB burst
  std::uint64_t sent = 0;
  auto t = t0;
  for (int ms = 0; ms <= 10'000; ++ms) {
    t = t0 + milliseconds(ms);
    while (r.tryTake(256 << 10, t))
      sent += 256 << 10;
  }
  // 10 s at 1 MB/s plus the initial burst, give or take one request.
  EXPECT_NEAR(static_cast<double>(sent), 10e6 + (1 << 20), 300e3);
  EXPECT_GT(r.availableAt(1 << 20, t), t);
  RateLimiter unlimited(0, 0, t0);
  EXPECT_TRUE(unlimited.tryTake(1ull << 40, t0));
}
