#include "common/units.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "common/error.h"

namespace imgpipe {
namespace {

// Splits "12.5Mi" into 12.5 and "Mi"; throws when there is no leading number.
std::pair<double, std::string> splitNumber(std::string_view text, std::string_view what) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) throw Error("invalid " + std::string(what) + " '" + std::string(text) + "'");
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || ptr != text.data() + i || value < 0)
    throw Error("invalid " + std::string(what) + " '" + std::string(text) + "'");
  std::string unit;
  for (char c : text.substr(i))
    if (c != ' ') unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return {value, unit};
}

}  // namespace

std::uint64_t parseSize(std::string_view text) {
  auto [value, unit] = splitNumber(text, "size");
  double mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    mult = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    throw Error("invalid size '" + std::string(text) + "': unknown unit '" + unit +
                "' (use K, M, G or T)");
  return static_cast<std::uint64_t>(std::llround(value * mult));
}

std::chrono::milliseconds parseDuration(std::string_view text) {
  auto [value, unit] = splitNumber(text, "duration");
  double ms = 0;
  if (unit.empty() || unit == "s")
    ms = value * 1000;
  else if (unit == "ms")
    ms = value;
  else if (unit == "m" || unit == "min")
    ms = value * 60'000;
  else if (unit == "h")
    ms = value * 3'600'000;
  else
    throw Error("invalid duration '" + std::string(text) + "': unknown unit '" + unit +
                "' (use ms, s, m or h)");
  return std::chrono::milliseconds(std::llround(ms));
}

std::uint64_t parseRate(std::string_view text) {
  auto [value, unit] = splitNumber(text, "rate");
  double bps = 0;  // bytes per second
  if (unit.empty() || unit == "b/s")
    bps = value;
  else if (unit == "kbit")
    bps = value * 1000 / 8;
  else if (unit == "mbit")
    bps = value * 1000 * 1000 / 8;
  else if (unit == "gbit")
    bps = value * 1000 * 1000 * 1000 / 8;
  else if (unit == "kb/s")
    bps = value * 1000;
  else if (unit == "mb/s")
    bps = value * 1000 * 1000;
  else if (unit == "gb/s")
    bps = value * 1000 * 1000 * 1000;
  else
    throw Error("invalid rate '" + std::string(text) + "': unknown unit '" + unit +
                "' (use kbit, mbit, gbit, KB/s, MB/s or GB/s)");
  return static_cast<std::uint64_t>(std::llround(bps));
}

std::string formatBytes(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string formatDuration(std::chrono::milliseconds d) {
  long long s = d.count() / 1000;
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  return buf;
}

}  // namespace imgpipe
