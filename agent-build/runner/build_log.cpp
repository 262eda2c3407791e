#include "agent-build/runner/build_log.h"

#include <ctime>

#include "common/error.h"

namespace imgpipe::build {
namespace {

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(ms));
  return out;
}

}  // namespace

BuildLog::BuildLog(const std::filesystem::path& file, EventWriter& events)
    : path_(file), events_(events) {
  file_ = std::fopen(file.c_str(), "ae");
  if (file_ == nullptr) throwErrno("cannot open build log " + file.string());
}

BuildLog::~BuildLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void BuildLog::setStep(std::string step) {
  std::lock_guard lock(mutex_);
  step_ = std::move(step);
  lastProgress_ = {};
  rate_.reset();
}

std::string BuildLog::step() const {
  std::lock_guard lock(mutex_);
  return step_;
}

void BuildLog::writeLine(const std::string& step, std::string_view text) {
  std::fprintf(file_, "%s [%s] %.*s\n", timestamp().c_str(), step.c_str(),
               static_cast<int>(text.size()), text.data());
}

void BuildLog::write(const char* level, const std::string& message, bool toParent) {
  std::string step;
  {
    std::lock_guard lock(mutex_);
    step = step_;
    writeLine(
        step,
        std::string(std::string_view(level) == "info" ? "" : std::string(level) + ": ") + message);
  }
  if (toParent)
    events_.emit({{"event", "log"}, {"step", step}, {"level", level}, {"message", message}});
}

void BuildLog::output(std::string_view line) {
  std::lock_guard lock(mutex_);
  std::string text = "| ";
  text += line;
  writeLine(step_, text);
}

void BuildLog::progress(std::uint64_t done, std::uint64_t total, const std::string& unit) {
  const auto now = std::chrono::steady_clock::now();
  std::string step;
  std::uint64_t rate = 0, eta = 0;
  {
    std::lock_guard lock(mutex_);
    rate_.sample(done, now);
    const bool final = total > 0 && done >= total;
    if (!final && now - lastProgress_ < std::chrono::milliseconds(500)) return;
    lastProgress_ = now;
    step = step_;
    rate = rate_.perSecond();
    eta = rate_.etaSeconds(done, total);
  }
  events_.emit({{"event", "progress"},
                {"step", step},
                {"done", done},
                {"total", total},
                {"rate", rate},
                {"eta", eta},
                {"unit", unit}});
}

void BuildLog::flush() {
  std::lock_guard lock(mutex_);
  std::fflush(file_);
}

}  // namespace imgpipe::build
