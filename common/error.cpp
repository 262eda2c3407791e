#include "common/error.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace imgpipe {

std::string_view toString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::failed:
      return "failed";
    case ErrorKind::transient:
      return "transient";
    case ErrorKind::stopped:
      return "stopped";
    case ErrorKind::refused:
      return "refused";
  }
  return "?";
}

ErrorKind kindOf(const std::exception& e) noexcept {
  const auto* error = dynamic_cast<const Error*>(&e);
  return error ? error->kind() : ErrorKind::failed;
}

bool mayRunAgain(ErrorKind kind) noexcept {
  return kind == ErrorKind::transient || kind == ErrorKind::stopped;
}

void throwErrno(std::string_view what) {
  throwErrno(what, errno);
}

void throwErrno(std::string_view what, int err) {
  throw Error(std::string(what) + ": " + std::strerror(err));
}

}  // namespace imgpipe
