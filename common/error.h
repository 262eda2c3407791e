#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace imgpipe {

// How a failure is to be handled: the one classification that task runners report from, the
// coordinator retries by, and tests check. Every Error carries one.
enum class ErrorKind {
  failed,     // a definite answer: running it again changes nothing (bad input, a checksum)
  transient,  // may pass when tried again: a network error, a peer that restarts, a 503
  stopped,    // abandoned because it was asked to stop (cancel, shutdown, SIGTERM)
  refused,    // a peer or a rule refused it (not granted, an invalid id): retrying cannot help
};
std::string_view toString(ErrorKind kind);

// An error meant for an operator: it names what is wrong (file, field, value, peer) and, where
// known, what to do about it. Programming errors stay std::logic_error and friends.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ErrorKind kind = ErrorKind::failed)
      : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// An Error's kind; failed for any other exception.
ErrorKind kindOf(const std::exception& e) noexcept;

// Whether the coordinator may run a task again after it failed this way: after a transient
// error, and after a stop (a stopping agent's task runs elsewhere; a cancelled job's tasks are
// no longer the coordinator's, so nothing runs them again).
bool mayRunAgain(ErrorKind kind) noexcept;

// Throws Error("<what>: <strerror(errno)>").
[[noreturn]] void throwErrno(std::string_view what);
[[noreturn]] void throwErrno(std::string_view what, int err);

}  // namespace imgpipe
