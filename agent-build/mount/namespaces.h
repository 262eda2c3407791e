#pragma once

namespace imgpipe::build {

// Gives the calling process its own mount namespace with private propagation: nothing it mounts
// is seen outside, nothing mounted outside appears inside, and when the last process in it
// exits the kernel unmounts everything in it — also after SIGKILL. Must be called while the
// process is single-threaded.
void enterPrivateMountNamespace();

// Splits the calling (single-threaded) process in two:
//  - a supervisor that stays outside, forwards SIGTERM/SIGINT/SIGHUP to the child and exits with
//    the child's status (128+signal when killed) — this function never returns in it;
//  - the child, which returns from this function as PID 1 of a new PID namespace with a fresh
//    /proc. When it exits, the kernel kills every process left in the namespace (a daemon that
//    a sandbox and what runs in it, a qemu-storage-daemon...), and it is itself SIGKILLed if
//    the supervisor dies first.
// SIGTERM, SIGINT and SIGHUP stay blocked in the child: take them with sigwait (see
// BuildSignals in the runner).
void enterNewPidNamespace();

}  // namespace imgpipe::build
