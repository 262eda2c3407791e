#pragma once

// The system calls a definition's code never gets, wherever it runs (the image's commands, the
// Ansible controller, QEMU at the acceptance boot): a classic-BPF seccomp program that bwrap
// installs right before it executes the command (`bwrap --seccomp FD`). A denylist, as Docker's
// and systemd-nspawn's are, of what reaches the kernel as a whole rather than the sandbox: the
// kernel keyrings, module and kexec loading, file handles that bypass the mount tree, BPF and
// perf, new user namespaces (a full capability set in a namespace of one's own is the first step
// of most container escapes), clock, swap, reboot, accounting and quota. Written by hand because
// the program is short and libseccomp is not among the project's dependencies; the tests run it
// in a real process (tests/build/sandbox_unit_test.cpp).

#include <linux/filter.h>

#include <string>
#include <vector>

namespace imgpipe::build {

// One denied call, for docs and tests.
struct DeniedSyscall {
  const char* name;
  int number;
  int error;  // the errno the call returns
};

// Every call the filter denies outright (clone and unshare are denied only with CLONE_NEWUSER).
const std::vector<DeniedSyscall>& deniedSyscalls();

// The program: x86-64 only (any other ABI, x32 and i386 included, gets ENOSYS).
std::vector<sock_filter> seccompProgram();

}  // namespace imgpipe::build
