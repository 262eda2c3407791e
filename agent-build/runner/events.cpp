#include "agent-build/runner/events.h"

#include <unistd.h>

#include <cerrno>

namespace imgpipe::build {

void EventWriter::emit(const nlohmann::json& event) {
  std::string line = std::string(kEventPrefix) +
                     event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the parent is gone; the build goes on to unwind
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace imgpipe::build
