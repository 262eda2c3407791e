#include "common/net/reactor.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"

namespace imgpipe::net {

Reactor::Reactor() : wakeFd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wakeFd_) throwErrno("eventfd");
}

void Reactor::addSocket(zmq::socket_t& socket, std::function<void()> onReadable) {
  handlers_.push_back({socket.handle(), -1, std::move(onReadable), false});
}

void Reactor::removeSocket(zmq::socket_t& socket) {
  for (auto& h : handlers_)
    if (h.socket == socket.handle()) h.removed = true;
}

void Reactor::addFd(int fd, std::function<void()> onReadable) {
  handlers_.push_back({nullptr, fd, std::move(onReadable), false});
}

void Reactor::removeFd(int fd) {
  for (auto& h : handlers_)
    if (h.socket == nullptr && h.fd == fd) h.removed = true;
}

Reactor::TimerId Reactor::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = nextTimer_++;
  timers_[id] = Timer{Clock::now() + delay, std::chrono::milliseconds(0), std::move(fn)};
  return id;
}

Reactor::TimerId Reactor::every(std::chrono::milliseconds period, std::function<void()> fn) {
  TimerId id = nextTimer_++;
  timers_[id] = Timer{Clock::now() + period, period, std::move(fn)};
  return id;
}

void Reactor::cancel(TimerId id) {
  timers_.erase(id);
}

void Reactor::post(std::function<void()> fn) {
  {
    std::lock_guard lock(postMutex_);
    posted_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  (void)!::write(wakeFd_.get(), &one, sizeof one);
}

void Reactor::stop() {
  stopping_ = true;
  std::uint64_t one = 1;
  (void)!::write(wakeFd_.get(), &one, sizeof one);
}

void Reactor::invoke(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    ++callbackErrors_;
    spdlog::error("event loop: a handler failed: {}", e.what());
  } catch (...) {
    ++callbackErrors_;
    spdlog::error("event loop: a handler failed with an unknown exception");
  }
}

void Reactor::drainPosted() {
  std::uint64_t count;
  (void)!::read(wakeFd_.get(), &count, sizeof count);
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(postMutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch)
    invoke(fn);
}

void Reactor::runOnce(std::chrono::milliseconds maxWait) {
  std::erase_if(handlers_, [](const Handler& h) { return h.removed; });
  auto now = Clock::now();
  auto wait = maxWait;
  for (const auto& [id, t] : timers_) {
    auto until = std::chrono::duration_cast<std::chrono::milliseconds>(t.due - now);
    wait = std::max(std::chrono::milliseconds(0), std::min(wait, until));
  }
  std::vector<zmq::pollitem_t> items;
  items.reserve(handlers_.size() + 1);
  items.push_back({nullptr, wakeFd_.get(), ZMQ_POLLIN, 0});
  for (const auto& h : handlers_)
    items.push_back({h.socket, h.fd, ZMQ_POLLIN, 0});
  zmq::poll(items.data(), items.size(), wait);

  if (items[0].revents & ZMQ_POLLIN) drainPosted();
  // Handlers may add or remove handlers; iterate over the ones polled, by index.
  const size_t polled = items.size() - 1;
  for (size_t i = 0; i < polled; ++i) {
    if (!(items[i + 1].revents & ZMQ_POLLIN) || handlers_[i].removed) continue;
    auto fn = handlers_[i].fn;  // the handler may remove itself
    invoke(fn);
  }

  now = Clock::now();
  std::vector<TimerId> due;
  for (const auto& [id, t] : timers_)
    if (t.due <= now) due.push_back(id);
  for (TimerId id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier timer
    auto fn = it->second.fn;
    if (it->second.period.count() > 0) {
      it->second.due = now + it->second.period;
    } else {
      timers_.erase(it);
    }
    invoke(fn);
  }
}

void Reactor::run() {
  while (!stopping_)
    runOnce(std::chrono::milliseconds(1000));
}

}  // namespace imgpipe::net
