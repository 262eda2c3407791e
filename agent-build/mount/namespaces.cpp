#include "agent-build/mount/namespaces.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"

namespace imgpipe::build {

void enterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) throwErrno("cannot create a private mount namespace (unshare)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    throwErrno("cannot make / private in the new mount namespace");
}

void enterNewPidNamespace() {
  if (::unshare(CLONE_NEWPID) != 0) throwErrno("cannot create a PID namespace (unshare)");
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    sigaddset(&forwarded, s);
  if (::sigprocmask(SIG_BLOCK, &forwarded, nullptr) != 0) throwErrno("sigprocmask");

  // The child watches this pipe: it reads EOF once the supervisor is gone, which closes the race
  // between fork and PR_SET_PDEATHSIG.
  int lifeline[2];
  if (::pipe2(lifeline, O_CLOEXEC) != 0) throwErrno("pipe2");

  pid_t child = ::fork();
  if (child < 0) throwErrno("fork into the PID namespace");
  if (child == 0) {
    ::close(lifeline[1]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    pollfd p{lifeline[0], POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) ::_exit(137);  // supervisor already gone
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_UNBLOCK, &chld, nullptr);
    // Our own /proc: PIDs in it are the ones fork() returns here, and it lists only this build.
    if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
      throwErrno("cannot mount /proc for the build's PID namespace");
    return;
  }

  ::close(lifeline[0]);
  for (;;) {
    int sig = 0;
    if (::sigwait(&forwarded, &sig) != 0) continue;
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t r = ::waitpid(child, &status, WNOHANG);
      if (r == child) ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      continue;
    }
    ::kill(child, sig);
  }
}

}  // namespace imgpipe::build
