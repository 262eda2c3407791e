#include "common/net/tcp_options.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace imgpipe::net {

namespace {
bool isTcp(int fd) {
  int protocol = 0;
  socklen_t len = sizeof protocol;
  return ::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 && protocol == IPPROTO_TCP;
}
}  // namespace

bool validCongestionControlName(std::string_view name) {
  if (name == kSystemCongestionControl) return true;
  if (name.empty() || name.size() > 15) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

std::string setCongestionControl(int fd, std::string_view algorithm) {
  if (algorithm.empty() || algorithm == kSystemCongestionControl) return "";
  if (!isTcp(fd)) return "";
  const std::string name(algorithm);
  if (::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(),
                   static_cast<socklen_t>(name.size())) == 0)
    return "";
  const int e = errno;
  if (e == ENOENT) return "the kernel has no congestion control '" + name + "'";
  if (e == EPERM)
    return "not permitted to choose '" + name +
           "' (not in net.ipv4.tcp_allowed_congestion_control, and not root)";
  return "TCP_CONGESTION " + name + ": " + std::strerror(e);
}

std::string CongestionChoice::apply(int fd) {
  auto why = setCongestionControl(fd, algorithm_);
  if (why == lastProblem_) return "";
  lastProblem_ = why;
  return why;
}

std::string congestionControlOf(int fd) {
  if (!isTcp(fd)) return "";
  char name[16] = {};
  socklen_t len = sizeof name;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0) return "";
  return std::string(name, ::strnlen(name, len));
}

std::chrono::milliseconds PathTiming::rto() const {
  using std::chrono::milliseconds;
  return std::max(milliseconds(200), std::chrono::ceil<milliseconds>(rtt + 4 * rttvar));
}

std::optional<PathTiming> pathTimingOf(int fd) {
  if (!isTcp(fd)) return std::nullopt;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_rtt == 0)
    return std::nullopt;
  return PathTiming{std::chrono::microseconds(info.tcpi_rtt),
                    std::chrono::microseconds(info.tcpi_rttvar),
                    std::chrono::milliseconds(info.tcpi_last_ack_recv)};
}

}  // namespace imgpipe::net
