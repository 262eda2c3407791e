#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/error.h"
#include "common/net/curve_keys.h"
#include "common/net/reactor.h"
#include "common/net/socket_monitor.h"
#include "protocol/codec.h"

namespace imgpipe::cli {

// Exit codes of the imgpipe command (documented in README.md).
enum ExitCode : int {
  kOk = 0,
  kJobFailed = 1,      // the job failed or was cancelled (submit --wait, watch)
  kUsage = 2,          // bad arguments or invalid input (definition, request)
  kUnreachable = 3,    // no answer from the coordinator
  kNotAuthorized = 4,  // the coordinator refused our key or role
  kRejected = 5,       // understood but not possible: unknown job, conflicting state
};

// A failure with its exit code; main() prints the message and exits with the code.
class CliError : public Error {
 public:
  CliError(ExitCode code, const std::string& message) : Error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// One operator connection to the coordinator (DEALER, CurveZMQ client).
class OperatorClient {
 public:
  OperatorClient(const std::string& endpoint, const std::string& coordinatorKey,
                 const net::CurveKeyPair& keys, std::chrono::milliseconds timeout);
  ~OperatorClient();

  using Fill = std::function<void(proto::OperatorRequest::Builder)>;
  // Sends one request and waits for its reply; a reply of kind error becomes a CliError.
  std::unique_ptr<proto::Decoded<proto::Envelope>> request(const Fill& fill);
  // Waits for the next pushed message (jobUpdate); nullptr on timeout.
  std::unique_ptr<proto::Decoded<proto::Envelope>> next(std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<proto::Decoded<proto::Envelope>> receive(std::chrono::milliseconds timeout);

  std::string endpoint_;
  std::string publicKey_;
  std::chrono::milliseconds timeout_;
  zmq::context_t context_{1};
  net::Reactor reactor_;
  zmq::socket_t socket_;
  std::unique_ptr<net::SocketMonitor> monitor_;
  std::optional<std::string> authError_;
  std::uint64_t nextRequestId_ = 1;
};

}  // namespace imgpipe::cli
