#pragma once

// The build agent's side of exec_wire.h: a unix socket in the Ansible step's work directory
// (bind-mounted into the controller's sandbox) and the thread that runs each command it is
// asked for in the image sandbox, with the descriptors it was given. The controller runs with no
// capabilities and no network; this is its only way into the image, and it leads nowhere else.
// One command at a time, as Ansible runs one task on one host at a time. Resource type: the
// destructor stops the thread, terminates a command still running and removes the socket.

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "common/unique_fd.h"

namespace imgpipe::build {

class ExecBroker {
 public:
  // `prepare` turns the controller's argv into the sandboxed command (ChrootSession's
  // commandOptions); `log` gets one line per refused request.
  using Prepare = std::function<SubprocessOptions(std::vector<std::string> argv)>;
  ExecBroker(std::filesystem::path socketPath, Prepare prepare,
             std::function<void(const std::string&)> log);
  ~ExecBroker();
  ExecBroker(const ExecBroker&) = delete;
  ExecBroker& operator=(const ExecBroker&) = delete;

  const std::filesystem::path& socketPath() const { return path_; }
  std::size_t commandsRun() const { return commands_; }

 private:
  void serve(std::stop_token stop);
  void serveOne(int connection, std::stop_token stop);

  std::filesystem::path path_;
  Prepare prepare_;
  std::function<void(const std::string&)> log_;
  UniqueFd listen_;
  std::atomic<std::size_t> commands_{0};
  std::jthread thread_;  // last: stopped and joined first
};

}  // namespace imgpipe::build
