#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace imgpipe::net {

// What the transfer plane sets on, and reads from, the TCP connections ZeroMQ makes for it (the
// descriptor comes from a socket monitor's connected / accepted event).

// The TCP congestion control of one connection (TCP_CONGESTION), chosen by the application
// instead of left to the host's default. On a long, lossy path a single cubic stream reaches
// about a tenth of the link rate (docs/transfer.md, "Congestion control"); BBR, which does not read
// loss as congestion, reaches nine tenths. Setting it per connection changes nothing else on the
// host: other programs keep the host's default.

// "system": the host's default, untouched.
inline constexpr std::string_view kSystemCongestionControl = "system";

// A name the kernel could know: 1..15 of [a-z0-9_] (TCP_CA_NAME_MAX), or "system".
bool validCongestionControlName(std::string_view name);

// Sets `algorithm` on the TCP socket `fd`. "" on success (or for "system"), else why not: the
// kernel lacks it (a module that is not built), or the caller may not choose it (not root and
// not in net.ipv4.tcp_allowed_congestion_control). A socket that is not TCP is left alone.
std::string setCongestionControl(int fd, std::string_view algorithm);

// The algorithm `fd` runs, "" when it is not a TCP socket.
std::string congestionControlOf(int fd);

// One socket's choice, applied to each of its connections as it is made; a reason it could not
// is returned the first time it occurs (to be logged once, not once per connection). Value type.
class CongestionChoice {
 public:
  explicit CongestionChoice(std::string algorithm) : algorithm_(std::move(algorithm)) {}
  // "" when set (or "system"), or when the reason is the one returned last time.
  std::string apply(int fd);

 private:
  std::string algorithm_;
  std::string lastProblem_;
};

// The path's round trip as the kernel measures it for this connection (TCP_INFO: smoothed RTT
// and its mean deviation, from the ACKs of what this end sent). Unlike a reply's round trip it
// holds no time spent queued behind our own data, and unlike tcpi_rto it holds no backoff: it
// stays what the path was while the path is down. Value type.
struct PathTiming {
  std::chrono::microseconds rtt{0};
  std::chrono::microseconds rttvar{0};
  // Since the last ACK arrived: how long ago the path last carried what this end sent.
  std::chrono::milliseconds sinceLastAck{0};
  // TCP's retransmission timeout for the path without backoff: RTT + 4 RTTVAR, at least Linux's
  // 200 ms floor (TCP_RTO_MIN).
  std::chrono::milliseconds rto() const;
};
// Empty when `fd` is not a TCP socket or has no RTT sample yet.
std::optional<PathTiming> pathTimingOf(int fd);

}  // namespace imgpipe::net
