#include "agent-build/util/stop_signals.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace imgpipe::build {

std::stop_source stopOnTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::stop_source stop;
  std::thread([signals, stop]() mutable {
    int sig = 0;
    while (sigwait(&signals, &sig) == 0)
      stop.request_stop();
  }).detach();
  return stop;
}

}  // namespace imgpipe::build
