#include "agent-build/ansible/exec_wire.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/error.h"

namespace imgpipe::build {
namespace {

void writeAll(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throwErrno("cannot send to the build agent's exec socket");
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Reads exactly n bytes; false on an orderly close before the first byte.
bool readAll(int fd, char* data, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, data + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throwErrno("cannot read from the exec socket");
    if (r == 0) {
      if (got == 0) return false;
      throw Error("the exec socket closed in the middle of a frame");
    }
    got += static_cast<std::size_t>(r);
  }
  return true;
}

std::uint32_t le32(const unsigned char* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}

void putLe32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<unsigned char>(v >> (8 * i));
}

}  // namespace

void sendExecRequest(int socket, const std::vector<std::string>& argv, std::array<int, 3> stdio) {
  if (argv.empty()) throw Error("no command to run in the image");
  std::string body;
  for (const auto& a : argv) {
    if (a.find('\0') != std::string::npos) throw Error("a command argument holds a NUL byte");
    body += a;
    body += '\0';
  }
  if (body.size() > kMaxExecRequestBytes || argv.size() > kMaxExecArgs)
    throw Error("the command is longer than the exec socket takes (" +
                std::to_string(kMaxExecRequestBytes) + " bytes)");
  unsigned char header[4];
  putLe32(header, static_cast<std::uint32_t>(body.size()));
  iovec iov{header, sizeof header};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 3)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * 3);
  std::memcpy(CMSG_DATA(c), stdio.data(), sizeof(int) * 3);
  ssize_t n;
  do
    n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) throwErrno("cannot send the command to the build agent");
  if (static_cast<std::size_t>(n) < sizeof header)
    writeAll(socket, reinterpret_cast<const char*>(header) + n, sizeof header - n);
  writeAll(socket, body.data(), body.size());
}

ExecRequest receiveExecRequest(int socket) {
  ExecRequest req;
  unsigned char header[4];
  iovec iov{header, sizeof header};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 3)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) throwErrno("cannot read a command from the exec socket");
  // Whatever descriptors arrived are owned before anything else can fail.
  std::size_t fds = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (fds < 3)
        req.stdio[fds] = UniqueFd(fd);
      else
        UniqueFd(fd).reset();
      ++fds;
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) throw Error("the command came with too many descriptors");
  if (n == 0) throw Error("the exec socket closed before a command");
  if (fds != 3)
    throw Error("the command came with " + std::to_string(fds) +
                " descriptors instead of stdin, stdout and stderr");
  if (static_cast<std::size_t>(n) < sizeof header &&
      !readAll(socket, reinterpret_cast<char*>(header) + n, sizeof header - n))
    throw Error("the exec socket closed in the middle of a frame");
  const std::uint32_t size = le32(header);
  if (size == 0 || size > kMaxExecRequestBytes)
    throw Error("a command of " + std::to_string(size) + " bytes (at most " +
                std::to_string(kMaxExecRequestBytes) + ")");
  std::string body(size, '\0');
  if (!readAll(socket, body.data(), size)) throw Error("the exec socket closed before the command");
  if (body.back() != '\0') throw Error("the command's last argument is not terminated");
  for (std::size_t p = 0; p < body.size();) {
    const auto end = body.find('\0', p);
    req.argv.push_back(body.substr(p, end - p));
    p = end + 1;
    if (req.argv.size() > kMaxExecArgs) throw Error("a command of more than 4096 arguments");
  }
  if (req.argv.front().empty()) throw Error("a command with an empty program name");
  return req;
}

void sendExitStatus(int socket, int status) {
  unsigned char b[4];
  putLe32(b, static_cast<std::uint32_t>(status));
  writeAll(socket, reinterpret_cast<const char*>(b), sizeof b);
}

int receiveExitStatus(int socket) {
  unsigned char b[4];
  if (!readAll(socket, reinterpret_cast<char*>(b), sizeof b))
    throw Error("the build agent closed the exec socket without the command's exit status");
  return static_cast<int>(le32(b));
}

}  // namespace imgpipe::build
