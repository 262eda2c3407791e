#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace imgpipe {

// "10G", "512M", "4096", "1.5G" (binary units: K = 1024). Throws Error naming the text.
std::uint64_t parseSize(std::string_view text);
// "1s", "500ms", "2m", "1h", "30" (seconds). Throws Error naming the text.
std::chrono::milliseconds parseDuration(std::string_view text);
// "40mbit", "5MB/s", "0" (unlimited) -> bytes per second. Throws Error naming the text.
std::uint64_t parseRate(std::string_view text);

std::string formatBytes(std::uint64_t bytes);           // "1.5 GiB"
std::string formatDuration(std::chrono::milliseconds);  // "1m05s"

}  // namespace imgpipe
