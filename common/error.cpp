#include "common/error.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace imgpipe {

void throwErrno(std::string_view what) {
  throwErrno(what, errno);
}

void throwErrno(std::string_view what, int err) {
  throw Error(std::string(what) + ": " + std::strerror(err));
}

}  // namespace imgpipe
