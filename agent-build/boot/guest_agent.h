#pragma once

#include <chrono>
#include <filesystem>
#include <string>

namespace imgpipe::build {

inline constexpr const char* kGuestAgentPort = "org.qemu.guest_agent.0";

struct PingResult {
  bool ok = false;
  std::string detail;
};

// Asks the QEMU guest agent for `guest-ping` through its virtio-serial channel, as a cloud's
// hypervisor does: connects to the chardev's host-side unix socket, resynchronises with
// guest-sync-delimited (the channel may hold a half-read request of an earlier client), then
// pings. Tries again until `timeout`: the agent starts only once udev has seen its port.
PingResult guestPing(const std::filesystem::path& socket, std::chrono::milliseconds timeout);

}  // namespace imgpipe::build
