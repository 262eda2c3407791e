#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace imgpipe {

// An error meant for an operator: it names what is wrong (file, field, value, peer) and, where
// known, what to do about it. Programming errors stay std::logic_error and friends.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error("<what>: <strerror(errno)>").
[[noreturn]] void throwErrno(std::string_view what);
[[noreturn]] void throwErrno(std::string_view what, int err);

}  // namespace imgpipe
