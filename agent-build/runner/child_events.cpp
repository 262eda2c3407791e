#include "agent-build/runner/child_events.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "agent-build/runner/events.h"

namespace imgpipe::build {
namespace {

using nlohmann::json;

// A field of the expected type, or the fallback when absent; a field of another type is an
// error (json::type_error), caught once by the caller.
template <typename T>
T field(const json& e, const char* key, T fallback) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // get<T>() casts a float (UB out of range) and wraps a negative into an unsigned: a count
    // must be a whole number that fits.
    const bool fits = std::is_unsigned_v<T>
                          ? it->is_number_unsigned() &&
                                it->template get<std::uint64_t>() <= std::numeric_limits<T>::max()
                      : it->is_number_unsigned()
                          ? it->template get<std::uint64_t>() <=
                                static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                          : it->is_number_integer() &&
                                it->template get<std::int64_t>() >= std::numeric_limits<T>::min() &&
                                it->template get<std::int64_t>() <= std::numeric_limits<T>::max();
    if (!fits)
      throw std::invalid_argument(std::string("'") + key + "' is not a whole number in range");
  }
  return it->get<T>();
}

ChildEvent decode(const json& e) {
  if (!e.is_object()) throw std::invalid_argument("not a JSON object");
  const auto kind = field<std::string>(e, "event", "");
  const auto step = field<std::string>(e, "step", "");
  if (kind == "step") {
    const auto state = field<std::string>(e, "state", "");
    StepEvent s{StepEvent::State::started, step, field<std::uint64_t>(e, "duration_ms", 0),
                field<std::string>(e, "message", "")};
    if (state == "finished")
      s.state = StepEvent::State::finished;
    else if (state == "skipped")
      s.state = StepEvent::State::skipped;
    else if (state != "started")
      throw std::invalid_argument("unknown step state '" + state + "'");
    return s;
  }
  if (kind == "log")
    return LogEvent{field<std::string>(e, "level", "info"), step,
                    field<std::string>(e, "message", "")};
  if (kind == "progress")
    return ProgressEvent{step,
                         field<std::uint64_t>(e, "done", 0),
                         field<std::uint64_t>(e, "total", 0),
                         field<std::uint64_t>(e, "rate", 0),
                         field<std::uint64_t>(e, "eta", 0),
                         field<std::string>(e, "unit", "bytes")};
  if (kind == "failed")
    return FailedEvent{step,
                       field<std::string>(e, "message", ""),
                       field<int>(e, "exit_code", 0),
                       field<std::vector<std::string>>(e, "tail", {}),
                       field<bool>(e, "retryable", false),
                       field<bool>(e, "stopped", false),
                       field<json>(e, "validation", json::object())};
  if (kind == "result") {
    ResultEvent r;
    r.output.image = field<std::string>(e, "image", "");
    r.output.manifestFile = field<std::string>(e, "manifest", "");
    r.output.buildLog = field<std::string>(e, "build_log", "");
    r.output.imageName = field<std::string>(e, "name", "");
    r.output.imageVersion = field<std::string>(e, "version", "");
    r.output.reused = field<bool>(e, "reused", false);
    r.baseOnly = field<bool>(e, "base_only", false);
    r.output.sha256Hex = field<std::string>(e, "sha256", "");
    r.output.size = field<std::uint64_t>(e, "size", 0);
    r.output.virtualSize = field<std::uint64_t>(e, "virtual_size", 0);
    return r;
  }
  throw std::invalid_argument("unknown event '" + kind + "'");
}

}  // namespace

std::variant<ChildEvent, std::string> decodeChildEvent(std::string_view line) {
  if (!line.starts_with(kEventPrefix)) return std::string("not an event line");
  try {
    return decode(json::parse(line.substr(kEventPrefix.size())));
  } catch (const std::exception& e) {
    return std::string("malformed event: ") + e.what();
  }
}

}  // namespace imgpipe::build
