#pragma once

#include <signal.h>

#include <initializer_list>
#include <utility>

#include "common/unique_fd.h"

namespace imgpipe::net {

// Shutdown (and reload) signals as a file descriptor, so that shutdown runs on the event loop
// thread (or a watcher's poll) like everything else instead of in a signal handler. The signals are
// blocked for the calling thread and every thread it starts afterwards: construct it first in
// main(). Resource type.
class ShutdownSignals {
 public:
  // SIGPIPE may be listed too: blocked, a write to a closed peer fails with EPIPE instead of
  // killing the process, and drain() never reports it as a request to stop.
  explicit ShutdownSignals(std::initializer_list<int> signals = {SIGTERM, SIGINT});
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  int fd() const { return fd_.get(); }
  // Reads every pending signal; returns the last one that asks to stop, 0 when none did.
  // SIGHUP, when listed, asks to reload instead: drain() notes it for takeHangup().
  int drain();
  // Whether a SIGHUP arrived since the last call.
  bool takeHangup() { return std::exchange(hangup_, false); }

 private:
  UniqueFd fd_;
  bool hangup_ = false;
};

}  // namespace imgpipe::net
