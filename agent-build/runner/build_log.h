#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "agent-build/runner/events.h"
#include "common/rate_meter.h"

namespace imgpipe::build {

// The build child's log: every line goes to the job's build log file (its digest is in the
// manifest); step messages and progress also go to the parent as events, where they are logged
// with job= and step= and forwarded to the coordinator. Command output goes to the file only.
// Thread-safe. Resource type (owns the file).
class BuildLog {
 public:
  BuildLog(const std::filesystem::path& file, EventWriter& events);
  ~BuildLog();
  BuildLog(const BuildLog&) = delete;
  BuildLog& operator=(const BuildLog&) = delete;

  void setStep(std::string step);
  std::string step() const;

  void info(const std::string& message) { write("info", message, true); }
  void warn(const std::string& message) { write("warn", message, true); }
  void error(const std::string& message) { write("error", message, true); }
  void detail(const std::string& message) { write("info", message, false); }  // file only
  void output(std::string_view line);                                         // command output
  // Rate-limited (about 2 per second, plus the final one) progress event with rate and ETA.
  // `unit` names what done/total count: "bytes", "seconds" or "permille".
  void progress(std::uint64_t done, std::uint64_t total, const std::string& unit = "bytes");

  EventWriter& events() { return events_; }
  const std::filesystem::path& file() const { return path_; }
  void flush();

 private:
  void write(const char* level, const std::string& message, bool toParent);
  void writeLine(const std::string& step, std::string_view text);

  std::filesystem::path path_;
  EventWriter& events_;
  std::FILE* file_ = nullptr;
  mutable std::mutex mutex_;
  std::string step_;
  std::chrono::steady_clock::time_point lastProgress_{};
  RateMeter rate_;  // of the current step's progress
};

}  // namespace imgpipe::build
