#include "common/net/shutdown_signals.h"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/error.h"

namespace imgpipe::net {

ShutdownSignals::ShutdownSignals(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals)
    sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd_) throwErrno("signalfd");
}

int ShutdownSignals::drain() {
  int last = 0;
  signalfd_siginfo info{};
  while (::read(fd_.get(), &info, sizeof info) == sizeof info)
    if (info.ssi_signo == SIGHUP)
      hangup_ = true;
    else if (info.ssi_signo != SIGPIPE)
      last = static_cast<int>(info.ssi_signo);
  return last;
}

}  // namespace imgpipe::net
