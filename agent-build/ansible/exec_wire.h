#pragma once

// The one request a sandboxed Ansible controller makes of the build agent: run this command in
// the image sandbox, with these descriptors as its stdin, stdout and stderr. Ansible's chroot
// connection runs `chroot_exe ROOT /bin/sh -c CMD` for every module and file it moves; the
// controller's chroot_exe is `imgpipe-agent-build ansible-exec`, which passes its own stdio
// (SCM_RIGHTS) and argv over a unix socket and exits with the command's status. The bytes of a
// module or a file never pass through the agent.
//
// Frame: u32 little-endian length, then the argv as NUL-terminated strings; the three
// descriptors ride on the frame's first bytes. The answer: i32 little-endian exit status
// (128 + signal when killed).

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace imgpipe::build {

inline constexpr std::size_t kMaxExecRequestBytes = 1u << 20;
inline constexpr std::size_t kMaxExecArgs = 4096;

struct ExecRequest {
  std::vector<std::string> argv;
  std::array<UniqueFd, 3> stdio;  // stdin, stdout, stderr
};

// Throws Error (errno, or the request's limits).
void sendExecRequest(int socket, const std::vector<std::string>& argv, std::array<int, 3> stdio);
// Throws Error naming what is wrong: a short frame, no descriptors, an empty argv, a limit.
ExecRequest receiveExecRequest(int socket);

void sendExitStatus(int socket, int status);
// Throws Error when the agent closed the connection without an answer.
int receiveExitStatus(int socket);

}  // namespace imgpipe::build
