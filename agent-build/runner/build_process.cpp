#include "agent-build/runner/build_process.h"

#include <signal.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "agent-build/runner/events.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"

namespace imgpipe::build {

using nlohmann::json;

BuildOutcome runBuild(const JobSpec& job, BuildEvents& events, std::stop_token stop,
                      std::chrono::milliseconds unwindGrace) {
  BuildOutcome outcome;
  std::optional<json> result;
  std::string currentStep = "setup";

  auto onLine = [&](std::string_view line) {
    if (!line.starts_with(kEventPrefix)) {
      events.stray(std::string(line));
      return;
    }
    json e;
    try {
      e = json::parse(line.substr(kEventPrefix.size()));
    } catch (const json::exception&) {
      events.stray(std::string(line));
      return;
    }
    const std::string kind = e.value("event", "");
    const std::string step = e.value("step", "");
    if (kind == "step") {
      const std::string state = e.value("state", "");
      if (state == "started") {
        currentStep = step;
        events.stepStarted(step);
      } else if (state == "finished") {
        outcome.steps.push_back(
            {step, e.value("duration_ms", std::uint64_t{0}), "ok", e.value("message", "")});
        events.stepFinished(step, e.value("duration_ms", std::uint64_t{0}), e.value("message", ""));
      } else if (state == "skipped") {
        outcome.steps.push_back({step, 0, "skipped", e.value("message", "")});
        events.stepSkipped(step, e.value("message", ""));
      }
    } else if (kind == "log") {
      events.log(e.value("level", "info"), step, e.value("message", ""));
    } else if (kind == "progress") {
      events.progress(step, e.value("done", std::uint64_t{0}), e.value("total", std::uint64_t{0}),
                      e.value("rate", std::uint64_t{0}), e.value("eta", std::uint64_t{0}),
                      e.value("unit", std::string("bytes")));
    } else if (kind == "failed") {
      BuildFailure f;
      f.step = step;
      f.message = e.value("message", "");
      f.exitCode = e.value("exit_code", 0);
      f.outputTail = e.value("tail", std::vector<std::string>{});
      f.retryable = e.value("retryable", false);
      f.stopped = e.value("stopped", false);
      outcome.failure = f;
    } else if (kind == "result") {
      result = e;
    }
  };

  // The child gets SIGTERM on a stop request and `unwindGrace` to clean up; only then does the
  // internal stop (SIGTERM to its group, SIGKILL after the grace) take over.
  std::stop_source hardStop;
  SubprocessOptions o;
  o.argv = {job.config.helper.string(), "run-build"};
  o.input = toJson(job).dump();
  o.onLine = onLine;
  o.tailLines = 40;
  o.stop = hardStop.get_token();
  o.killGrace = std::chrono::seconds(10);
  Subprocess child(std::move(o));
  const pid_t pid = child.pid();
  std::jthread watchdog([&, pid](std::stop_token self) {
    while (!self.stop_requested() && !stop.stop_requested())
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (self.stop_requested()) return;
    ::kill(pid, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + unwindGrace;
    while (!self.stop_requested() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!self.stop_requested()) hardStop.request_stop();
  });
  CommandResult r = child.wait();
  watchdog.request_stop();
  watchdog.join();

  if (r.exitCode == 0 && result) {
    BuildOutput out;
    out.image = result->value("image", "");
    out.manifestFile = result->value("manifest", "");
    out.buildLog = result->value("build_log", "");
    out.imageName = result->value("name", "");
    out.imageVersion = result->value("version", "");
    out.reused = result->value("reused", false);
    if (result->value("base_only", false)) {
      out.sha256Hex = result->value("sha256", "");
      out.size = result->value("size", std::uint64_t{0});
      out.virtualSize = result->value("virtual_size", std::uint64_t{0});
      outcome.output = out;
      return outcome;
    }
    // The manifest comes from its file, not the event line: with a long package list it would
    // not fit one.
    out.manifestJson = readFile(out.manifestFile);
    auto m = json::parse(out.manifestJson);
    out.sha256Hex = m.at("image").at("sha256");
    out.sha512Hex = m.at("image").at("sha512");
    out.size = m.at("image").at("size");
    out.virtualSize = m.at("image").at("virtual_size");
    outcome.output = out;
    return outcome;
  }
  if (!outcome.failure) {
    BuildFailure f;
    f.step = currentStep;
    f.stopped = stop.stop_requested();
    f.message = f.stopped ? "stopped during step " + currentStep
                          : "the build process exited (status " + std::to_string(r.exitCode) +
                                ") without reporting a result";
    f.exitCode = r.exitCode;
    f.outputTail = r.tail;
    outcome.failure = f;
  }
  return outcome;
}

}  // namespace imgpipe::build
