#include "agent-build/boot/guest_agent.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/net/unix_address.h"
#include "common/unique_fd.h"

namespace imgpipe::build {
namespace {

using Clock = std::chrono::steady_clock;

UniqueFd connectUnix(const std::filesystem::path& path, std::string& error) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_un addr = unixAddress(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    error = "connect " + path.string() + ": " + std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

bool sendAll(int fd, const std::string& text) {
  for (size_t off = 0; off < text.size();) {
    auto n = ::send(fd, text.data() + off, text.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads one JSON reply line; with `afterDelimiter`, first skips everything up to the 0xFF byte
// guest-sync-delimited sends ahead of its reply.
std::optional<nlohmann::json> readReply(int fd, Clock::time_point deadline, bool afterDelimiter) {
  std::string line;
  bool synced = !afterDelimiter;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    char c;
    if (::read(fd, &c, 1) != 1) return std::nullopt;
    if (!synced) {
      synced = static_cast<unsigned char>(c) == 0xFF;
      continue;
    }
    if (c != '\n') {
      line += c;
      continue;
    }
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) return j;
    line.clear();
  }
}

}  // namespace

PingResult guestPing(const std::filesystem::path& socket, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last = "no answer";
  std::mt19937_64 rng(std::random_device{}());
  while (Clock::now() < deadline) {
    std::string error;
    UniqueFd fd = connectUnix(socket, error);
    if (!fd) {
      last = error;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    const auto id = static_cast<std::int64_t>(rng() >> 12);
    const auto attempt = std::min(deadline, Clock::now() + std::chrono::seconds(5));
    if (!sendAll(fd.get(),
                 nlohmann::json({{"execute", "guest-sync-delimited"}, {"arguments", {{"id", id}}}})
                         .dump() +
                     "\n")) {
      last = "cannot write to " + socket.string();
      continue;
    }
    auto sync = readReply(fd.get(), attempt, true);
    if (!sync || sync->value("return", nlohmann::json()) != id) {
      last = sync ? "guest-sync answered " + sync->dump() : "no answer to guest-sync";
      continue;
    }
    sendAll(fd.get(), "{\"execute\":\"guest-ping\"}\n");
    auto pong = readReply(fd.get(), attempt, false);
    if (!pong) {
      last = "no answer to guest-ping";
      continue;
    }
    if (pong->contains("return")) return {true, "guest-ping answered"};
    // An error reply is an answer: the agent runs but refuses the ping. Not worth retrying.
    return {false, "guest-ping: " +
                       pong->value("error", nlohmann::json::object()).value("desc", pong->dump())};
  }
  return {false, last + " (within " + std::to_string(timeout.count() / 1000) + " s)"};
}

}  // namespace imgpipe::build
