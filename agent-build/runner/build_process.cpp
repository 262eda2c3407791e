#include "agent-build/runner/build_process.h"

#include <signal.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "agent-build/runner/child_events.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "definition/outputs.h"

namespace imgpipe::build {

using nlohmann::json;

BuildOutcome runBuild(const JobSpec& job, BuildEvents& events, std::stop_token stop,
                      std::chrono::milliseconds unwindGrace) {
  BuildOutcome outcome;
  std::string currentStep = "setup";

  std::optional<ResultEvent> result;
  auto onLine = [&](std::string_view line) {
    auto decoded = decodeChildEvent(line);
    if (std::holds_alternative<std::string>(decoded)) {
      events.stray(std::string(line));
      return;
    }
    std::visit(
        [&](auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, StepEvent>) {
            switch (e.state) {
              case StepEvent::State::started:
                currentStep = e.step;
                events.stepStarted(e.step);
                break;
              case StepEvent::State::finished:
                outcome.steps.push_back({e.step, e.durationMs, "ok", e.message});
                events.stepFinished(e.step, e.durationMs, e.message);
                break;
              case StepEvent::State::skipped:
                outcome.steps.push_back({e.step, 0, "skipped", e.message});
                events.stepSkipped(e.step, e.message);
                break;
            }
          } else if constexpr (std::is_same_v<E, LogEvent>) {
            events.log(e.level, e.step, e.message);
          } else if constexpr (std::is_same_v<E, ProgressEvent>) {
            events.progress(e.step, e.done, e.total, e.rate, e.eta, e.unit);
          } else if constexpr (std::is_same_v<E, FailedEvent>) {
            outcome.failure = BuildFailure{e.step,
                                           e.message,
                                           e.exitCode,
                                           std::move(e.tail),
                                           e.retryable,
                                           e.stopped,
                                           std::move(e.validation)};
          } else {
            result = std::move(e);
          }
        },
        std::get<ChildEvent>(decoded));
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
    BuildOutput out = result->output;
    if (result->baseOnly) {
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
    out.validation = m.value("validation", json());
    out.files.push_back({definition::OutputKind::qcow2, out.image, out.sha256Hex});
    for (const auto& entry : definition::outputDigestsFromJson(m.value("outputs", json::array()))) {
      out.outputs.emplace_back(definition::toString(entry.kind));
      // A name beside the manifest (outputDigestsFromJson refuses a path).
      if (!entry.file.empty())
        out.files.push_back(
            {entry.kind, out.manifestFile.parent_path() / entry.file, entry.sha256});
    }
    outcome.output = out;
    return outcome;
  }
  if (!outcome.failure) {
    BuildFailure f;
    f.step = currentStep;
    f.stopped = stop.stop_requested();
    f.retryable = f.stopped && mayRunAgain(ErrorKind::stopped);
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
