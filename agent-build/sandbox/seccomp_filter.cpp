#include "agent-build/sandbox/seccomp_filter.h"

#include <linux/audit.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>

namespace imgpipe::build {
namespace {

#ifndef __x86_64__
#error "seccomp_filter.cpp: only the x86-64 system call table is written down"
#endif

constexpr unsigned kX32Bit = 0x40000000U;  // __X32_SYSCALL_BIT

sock_filter stmt(unsigned short code, unsigned k) {
  return sock_filter{code, 0, 0, k};
}
sock_filter jump(unsigned short code, unsigned k, unsigned char jt, unsigned char jf) {
  return sock_filter{code, jt, jf, k};
}
unsigned ret(unsigned action, int error = 0) {
  return action | (static_cast<unsigned>(error) & SECCOMP_RET_DATA);
}

}  // namespace

const std::vector<DeniedSyscall>& deniedSyscalls() {
  static const std::vector<DeniedSyscall> calls = {
      // Kernel keyrings are not namespaced by mount or PID: root's keys are one keyctl away.
      {"keyctl", SYS_keyctl, EPERM},
      {"add_key", SYS_add_key, EPERM},
      {"request_key", SYS_request_key, EPERM},
      // Kernel code.
      {"init_module", SYS_init_module, EPERM},
      {"finit_module", SYS_finit_module, EPERM},
      {"delete_module", SYS_delete_module, EPERM},
      {"kexec_load", SYS_kexec_load, EPERM},
      {"kexec_file_load", SYS_kexec_file_load, EPERM},
      // A file handle opens any inode of a mounted filesystem, past the mount tree ("shocker").
      {"open_by_handle_at", SYS_open_by_handle_at, EPERM},
      // In-kernel programs, counters and fault handlers: a large attack surface no build needs.
      {"bpf", SYS_bpf, EPERM},
      {"perf_event_open", SYS_perf_event_open, EPERM},
      {"userfaultfd", SYS_userfaultfd, EPERM},
      // Namespaces are the sandbox's to make: none joined, none made (clone3's flags cannot be
      // read by a filter, so it answers ENOSYS and the C library falls back to clone).
      {"setns", SYS_setns, EPERM},
      {"clone3", SYS_clone3, ENOSYS},
      // Mounts (no CAP_SYS_ADMIN in any case; the new mount API too).
      {"mount", SYS_mount, EPERM},
      {"umount2", SYS_umount2, EPERM},
      {"pivot_root", SYS_pivot_root, EPERM},
      {"fsopen", SYS_fsopen, EPERM},
      {"fsmount", SYS_fsmount, EPERM},
      {"fspick", SYS_fspick, EPERM},
      {"open_tree", SYS_open_tree, EPERM},
      {"move_mount", SYS_move_mount, EPERM},
      {"mount_setattr", SYS_mount_setattr, EPERM},
      // Host-wide state.
      {"swapon", SYS_swapon, EPERM},
      {"swapoff", SYS_swapoff, EPERM},
      {"reboot", SYS_reboot, EPERM},
      {"acct", SYS_acct, EPERM},
      {"quotactl", SYS_quotactl, EPERM},
      {"syslog", SYS_syslog, EPERM},
      {"settimeofday", SYS_settimeofday, EPERM},
      {"clock_settime", SYS_clock_settime, EPERM},
      {"clock_adjtime", SYS_clock_adjtime, EPERM},
      {"adjtimex", SYS_adjtimex, EPERM},
      {"ioperm", SYS_ioperm, EPERM},
      {"iopl", SYS_iopl, EPERM},
      {"lookup_dcookie", SYS_lookup_dcookie, EPERM},
      {"vhangup", SYS_vhangup, EPERM},
  };
  return calls;
}

std::vector<sock_filter> seccompProgram() {
  std::vector<sock_filter> p;
  const auto allow = ret(SECCOMP_RET_ALLOW);
  const auto enosys = ret(SECCOMP_RET_ERRNO, ENOSYS);
  const auto eperm = ret(SECCOMP_RET_ERRNO, EPERM);
  // Another ABI would number every call differently: refuse it whole.
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, enosys));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  // x32 calls are x86-64 calls with bit 30 set: the same kernel functions under other numbers.
  p.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, kX32Bit, 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, enosys));
  for (const auto& c : deniedSyscalls()) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(c.number), 0, 1));
    p.push_back(stmt(BPF_RET | BPF_K, ret(SECCOMP_RET_ERRNO, c.error)));
  }
  // clone(flags, ...) and unshare(flags): refused when the flags ask for a user namespace. The
  // flags are the first argument of both on x86-64; CLONE_NEWUSER is in its low 32 bits.
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 3));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
  p.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, eperm));
  p.push_back(stmt(BPF_RET | BPF_K, allow));
  return p;
}

}  // namespace imgpipe::build
