#include "agent-build/ansible/exec_broker.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent-build/ansible/exec_wire.h"
#include "common/error.h"
#include "common/net/unix_address.h"

namespace imgpipe::build {

ExecBroker::ExecBroker(std::filesystem::path socketPath, Prepare prepare,
                       std::function<void(const std::string&)> log)
    : path_(std::move(socketPath)), prepare_(std::move(prepare)), log_(std::move(log)) {
  const sockaddr_un addr = unixAddress(path_);
  listen_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_) throwErrno("socket");
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  if (::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throwErrno("cannot listen on " + path_.string());
  if (::listen(listen_.get(), 4) != 0) throwErrno("listen on " + path_.string());
  thread_ = std::jthread([this](std::stop_token st) { serve(st); });
}

ExecBroker::~ExecBroker() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void ExecBroker::serve(std::stop_token stop) {
  while (!stop.stop_requested()) {
    pollfd p{listen_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    UniqueFd connection(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection) continue;
    try {
      serveOne(connection.get(), stop);
    } catch (const std::exception& e) {
      log_(std::string("refused a command from the Ansible controller: ") + e.what());
    }
  }
}

void ExecBroker::serveOne(int connection, std::stop_token stop) {
  // A controller that connects and sends nothing must not hold the image forever.
  timeval limit{10, 0};
  ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ExecRequest req = receiveExecRequest(connection);
  SubprocessOptions o = prepare_(std::move(req.argv));
  o.stdinFd = req.stdio[0].get();
  o.stdoutFd = req.stdio[1].get();
  o.stderrFd = req.stdio[2].get();
  Subprocess command(std::move(o));
  ++commands_;
  // Our copies go: the command holds its own, so the controller sees EOF when it exits.
  for (auto& fd : req.stdio)
    fd.reset();
  for (;;) {
    if (auto status = command.poll()) {
      sendExitStatus(connection, *status);
      return;
    }
    pollfd p{connection, POLLRDHUP, 0};
    const bool gone =
        ::poll(&p, 1, 50) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
    if (gone || stop.stop_requested()) {
      // The controller was stopped or timed out: nothing waits for this command any more.
      command.terminate();
      return;
    }
  }
}

}  // namespace imgpipe::build
