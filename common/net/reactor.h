#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>
#include <zmq.hpp>

#include "common/unique_fd.h"

namespace imgpipe::net {

// A single-threaded event loop over zmq_poll: sockets, plain fds, timers, and functions posted
// from other threads. ZeroMQ sockets are not thread-safe, so every socket lives on one reactor
// thread; worker threads talk to it only through post(). A callback that throws is logged and
// counted; it never ends the loop.
class Reactor {
 public:
  using Clock = std::chrono::steady_clock;
  using TimerId = std::uint64_t;

  Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  void addSocket(zmq::socket_t& socket, std::function<void()> onReadable);
  void removeSocket(zmq::socket_t& socket);
  void addFd(int fd, std::function<void()> onReadable);
  void removeFd(int fd);

  TimerId after(std::chrono::milliseconds delay, std::function<void()> fn);
  TimerId every(std::chrono::milliseconds period, std::function<void()> fn);
  void cancel(TimerId id);

  // Thread-safe: runs `fn` on the reactor thread soon.
  void post(std::function<void()> fn);
  // Runs until stop(); stop() is thread-safe and async-signal-safe.
  void run();
  void stop();
  // One poll pass waiting at most `maxWait`; for tests and nested loops.
  void runOnce(std::chrono::milliseconds maxWait);

  std::uint64_t callbackErrors() const { return callbackErrors_; }

 private:
  struct Handler {
    void* socket = nullptr;  // zmq socket handle, or nullptr for an fd
    int fd = -1;
    std::function<void()> fn;
    bool removed = false;
  };
  struct Timer {
    Clock::time_point due;
    std::chrono::milliseconds period{0};
    std::function<void()> fn;
  };

  void drainPosted();
  void invoke(const std::function<void()>& fn);

  std::vector<Handler> handlers_;
  std::map<TimerId, Timer> timers_;
  TimerId nextTimer_ = 1;
  UniqueFd wakeFd_;
  std::mutex postMutex_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stopping_{false};
  std::uint64_t callbackErrors_ = 0;
};

}  // namespace imgpipe::net
