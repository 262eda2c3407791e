#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdio>
#include <mutex>
#include <vector>

#include "common/error.h"

namespace imgpipe::log {
namespace {

constexpr const char* kPattern = "%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v";

std::mutex gMutex;
std::string gComponent = "imgpipe";

std::vector<spdlog::sink_ptr> sinks() {
  return spdlog::default_logger()->sinks();
}

}  // namespace

void init(std::string_view component, std::string_view level, const std::string& file) {
  std::lock_guard lock(gMutex);
  gComponent = component;
  std::vector<spdlog::sink_ptr> s{std::make_shared<spdlog::sinks::stderr_sink_mt>()};
  if (!file.empty()) s.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
  auto logger = std::make_shared<spdlog::logger>(std::string(component), s.begin(), s.end());
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off")
    throw Error("invalid log level '" + std::string(level) +
                "' (use trace, debug, info, warn or error)");
  logger->set_level(lvl);
  logger->set_pattern(kPattern);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

std::shared_ptr<spdlog::logger> forJob(std::string_view jobId, std::string_view step) {
  std::string name;
  {
    std::lock_guard lock(gMutex);
    name = gComponent;
  }
  name += " job=" + std::string(jobId);
  if (!step.empty()) name += " step=" + std::string(step);
  auto s = sinks();
  auto logger = std::make_shared<spdlog::logger>(name, s.begin(), s.end());
  logger->set_level(spdlog::default_logger()->level());
  logger->set_pattern(kPattern);
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::shared_ptr<spdlog::logger> named(std::string_view component) {
  auto s = sinks();
  auto logger = std::make_shared<spdlog::logger>(std::string(component), s.begin(), s.end());
  logger->set_level(spdlog::default_logger()->level());
  logger->set_pattern(kPattern);
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::string untrusted(std::string_view text, std::size_t max) {
  std::string out;
  for (unsigned char c : text.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > max) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace imgpipe::log
