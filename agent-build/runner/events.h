#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace imgpipe::build {

// The build child talks to its parent in JSON lines on stdout, each prefixed so that stray
// output can never be mistaken for an event:
//   @imgpipe {"event":"step","step":"packages","state":"started"}
//   @imgpipe
//   {"event":"step","step":"packages","state":"finished","duration_ms":41234,"message":"..."}
//   @imgpipe {"event":"step","step":"boot_test","state":"skipped","message":"..."}
//   @imgpipe {"event":"log","step":"mount","level":"info","message":"..."}
//   @imgpipe {"event":"progress","step":"compact","done":..,"total":..,"rate":..,"eta":..}
//   @imgpipe
//   {"event":"failed","step":"scripts","message":"...","exit_code":3,"tail":[..],"retryable":false}
//   @imgpipe {"event":"result", ...BuildOutput fields...}
inline constexpr std::string_view kEventPrefix = "@imgpipe ";

// Writes events to a file descriptor; thread-safe (progress comes from watcher threads).
class EventWriter {
 public:
  explicit EventWriter(int fd) : fd_(fd) {}
  void emit(const nlohmann::json& event);

 private:
  int fd_;
  std::mutex mutex_;
};

}  // namespace imgpipe::build
