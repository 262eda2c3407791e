#include "agent-build/sandbox/proxy_gate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "common/log.h"

namespace fs = std::filesystem;

namespace imgpipe::build {
namespace {

UniqueFd listenOnLoopback(std::uint16_t port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) throwErrno("proxy gate: socket");
  const int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throwErrno("proxy gate: bind 127.0.0.1:" + std::to_string(port));
  if (::listen(s.get(), 128) != 0) throwErrno("proxy gate: listen");
  return s;
}

// Connects from this thread's namespace (the host's) to the proxy.
UniqueFd connectTo(const ProxyEndpoint& e) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const auto port = std::to_string(e.port);
  if (int rc = ::getaddrinfo(e.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw Error("proxy gate: cannot resolve the proxy '" + e.host + "': " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  for (auto* ai = found; ai; ai = ai->ai_next) {
    UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (s && ::connect(s.get(), ai->ai_addr, ai->ai_addrlen) == 0) return s;
  }
  throwErrno("proxy gate: cannot connect to the proxy " + e.host + ":" + port);
}

bool writeAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const auto n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

ProxyGate::ProxyGate(const fs::path& nsFile, const BuildProxy& upstream) {
  std::vector<std::pair<std::uint16_t, ProxyEndpoint>> wanted = {
      {kHttpPort, parseProxyUrl(upstream.http, "build.proxy.http")}};
  inside_.http = "http://127.0.0.1:" + std::to_string(kHttpPort);
  inside_.https = inside_.http;
  if (!upstream.https.empty() && upstream.https != upstream.http) {
    wanted.emplace_back(kHttpsPort, parseProxyUrl(upstream.https, "build.proxy.https"));
    inside_.https = "http://127.0.0.1:" + std::to_string(kHttpsPort);
  }
  // Inside there is nothing to reach directly: no_proxy would only send requests nowhere.
  wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throwErrno("proxy gate: eventfd");
  ns_ = std::make_unique<NetworkNamespace>(nsFile, [&] {
    for (auto& [port, up] : wanted)
      listeners_.push_back({listenOnLoopback(port), up});
  });
  acceptor_ = std::thread([this] { acceptLoop(); });
}

ProxyGate::~ProxyGate() {
  stopping_ = true;
  const std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mutex_);
    for (auto& p : pumps_) {
      ::shutdown(p.client.get(), SHUT_RDWR);
      ::shutdown(p.upstream.get(), SHUT_RDWR);
    }
  }
  for (auto& p : pumps_)
    if (p.thread.joinable()) p.thread.join();
  pumps_.clear();
  listeners_.clear();
  ns_.reset();
}

void ProxyGate::reapFinished() {
  std::lock_guard lock(mutex_);
  for (auto it = pumps_.begin(); it != pumps_.end();) {
    if (it->done.load()) {
      it->thread.join();
      it = pumps_.erase(it);
    } else {
      ++it;
    }
  }
}

void ProxyGate::acceptLoop() {
  std::vector<pollfd> fds;
  fds.push_back({wake_.get(), POLLIN, 0});
  for (const auto& l : listeners_)
    fds.push_back({l.socket.get(), POLLIN, 0});
  while (!stopping_) {
    reapFinished();
    bool full = false;
    {
      std::lock_guard lock(mutex_);
      full = pumps_.size() >= kMaxConnections;
    }
    // At the limit only the stop signal is waited for (and finished pumps, once a second).
    const auto n = ::poll(fds.data(), full ? 1 : fds.size(), 1000);
    if (n < 0 && errno != EINTR) {
      log::named("proxy-gate")->error("poll: {}", std::strerror(errno));
      return;
    }
    if (n <= 0 || full) continue;
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      UniqueFd client(::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      const auto& upstream = listeners_[i - 1].upstream;
      std::lock_guard lock(mutex_);
      auto& p = pumps_.emplace_back();
      p.client = std::move(client);
      p.thread = std::thread([this, &p, upstream] { pump(p, upstream); });
    }
  }
}

void ProxyGate::pump(Pump& p, const ProxyEndpoint& upstream) {
  try {
    UniqueFd up = connectTo(upstream);
    {
      std::lock_guard lock(mutex_);
      p.upstream = std::move(up);
    }
    if (stopping_) throw Error("stopping");
    std::array<pollfd, 2> fds{{{p.client.get(), POLLIN, 0}, {p.upstream.get(), POLLIN, 0}}};
    std::array<int, 2> to{p.upstream.get(), p.client.get()};
    std::array<bool, 2> open{true, true};
    std::array<char, 64 * 1024> buf{};
    while (open[0] || open[1]) {
      for (int i = 0; i < 2; ++i)
        fds[i].fd = open[i] ? (i == 0 ? p.client.get() : p.upstream.get()) : -1;
      if (::poll(fds.data(), 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const auto n = ::recv(fds[i].fd, buf.data(), buf.size(), 0);
        if (n > 0 && writeAll(to[i], buf.data(), static_cast<std::size_t>(n))) continue;
        if (n < 0 && errno == EINTR) continue;
        // This direction is over: pass the end on. A reset or a failed write ends both: the
        // other side would otherwise hold this thread until the proxy's own timeout.
        open[i] = false;
        ::shutdown(to[i], SHUT_WR);
        if (n != 0) open[0] = open[1] = false;
      }
    }
  } catch (const std::exception& e) {
    if (!stopping_) log::named("proxy-gate")->warn("{}", e.what());
  }
  p.done = true;
}

}  // namespace imgpipe::build
