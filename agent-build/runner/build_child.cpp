#include "agent-build/runner/build_child.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <iterator>
#include <thread>

#include "agent-build/mount/namespaces.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/runner/events.h"
#include "agent-build/runner/job_spec.h"
#include "agent-build/runner/work_dir.h"
#include "agent-build/steps/step.h"
#include "agent-build/util/stop_signals.h"
#include "common/agent/task_failure.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/units.h"
#include "definition/parse_definition.h"

namespace imgpipe::build {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Failure {
  std::string step;
  std::string message;
  int exitCode = 0;
  std::vector<std::string> tail;
  bool retryable = false;
  bool stopped = false;
};

// Events travel as single lines, which the parent reads in pieces of at most 64 KiB: keep the
// text a failure carries well below that.
std::string clip(std::string s, size_t max) {
  if (s.size() > max)
    s = s.substr(0, max) + "... (" + std::to_string(s.size() - max) + " more bytes)";
  return s;
}

Failure describeFailure(const std::string& step, std::exception_ptr error,
                        const std::stop_token& stop) {
  auto info = agent::failureFrom(error, step);
  Failure f{.step = info.step,
            .message = clip(info.message, 8000),
            .exitCode = info.exitCode,
            .tail = std::move(info.outputTail),
            .retryable = info.retryable};
  for (auto& l : f.tail)
    l = clip(l, 1000);
  // Whatever a step threw while it was being stopped, the build was stopped.
  if (stop.stop_requested()) {
    f.stopped = true;
    f.message = "stopped during step " + step + " (SIGTERM or cancel)";
    f.retryable = mayRunAgain(ErrorKind::stopped);
  }
  return f;
}

// Releases the build's resources in reverse order, saying what it does: this is the failure
// path's "unmount and detach".
void teardown(BuildContext& ctx) {
  ctx.log.setStep("teardown");
  if (ctx.chroot) {
    ctx.log.info(
        "leaving the image (restoring resolv.conf and policy-rc.d, unmounting /run; nothing runs "
        "in it: each command's sandbox ended with it)");
    ctx.chroot.reset();
  }
  if (ctx.rootMount) {
    ctx.log.info("unmounting " + ctx.rootMount->target().string());
    try {
      ctx.rootMount->unmount();
    } catch (const std::exception& e) {
      ctx.log.warn(std::string(e.what()) + "; detaching lazily");
    }
    ctx.rootMount.reset();
  }
  if (ctx.disk) {
    auto name = ctx.disk->describe();
    if (ctx.disk->detach())
      ctx.log.info("detached " + name);
    else
      ctx.log.warn(name +
                   " is still bound; the kernel detaches it when the build's namespace goes");
    ctx.disk.reset();
  }
  ctx.baseLock.reset();
}

int runPipeline(BuildContext& ctx, EventWriter& events) {
  std::string current = "setup";
  try {
    for (const auto& step : makePipeline()) {
      const std::string name(step->name());
      std::string skip = step->skipReason(ctx.def);
      if (skip.empty() && ctx.reusable && !step->runsWhenReused())
        skip = "an earlier result is reused";
      if (!skip.empty()) {
        events.emit({{"event", "step"}, {"step", name}, {"state", "skipped"}, {"message", skip}});
        ctx.timings.push_back({name, 0, "skipped", skip});
        continue;
      }
      ctx.checkStop();
      current = name;
      ctx.log.setStep(name);
      events.emit({{"event", "step"}, {"step", name}, {"state", "started"}});
      const auto start = Clock::now();
      std::string summary = step->run(ctx);
      const auto ms = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
      ctx.log.detail("done in " + formatDuration(std::chrono::milliseconds(ms)) + ": " + summary);
      ctx.timings.push_back({name, ms, "ok", summary});
      events.emit({{"event", "step"},
                   {"step", name},
                   {"state", "finished"},
                   {"duration_ms", ms},
                   {"message", summary}});
      if (ctx.job.baseOnly && name == "fetch_base") {
        events.emit({{"event", "result"},
                     {"image", ctx.base.file.string()},
                     {"name", ctx.def.name},
                     {"version", ""},
                     {"reused", ctx.base.cached},
                     {"base_only", true},
                     {"sha256", ctx.base.sha256Hex},
                     {"sha512", ""},
                     {"size", std::filesystem::file_size(ctx.base.file)},
                     {"virtual_size", ctx.base.virtualSize}});
        return 0;
      }
    }
  } catch (...) {
    auto f = describeFailure(current, std::current_exception(), ctx.stop);
    // A full work dir shows up as I/O errors deep inside a command in the image; say what it really
    // is.
    try {
      if (auto free = freeBytes(ctx.config.workDir); free < (64ull << 20))
        f.message += "; the work dir " + ctx.config.workDir.string() + " is out of space (" +
                     formatBytes(free) + " free): give build.work_dir more room";
    } catch (const std::exception&) {
    }
    ctx.log.setStep(current);
    ctx.log.error(f.message);
    for (const auto& l : f.tail)
      ctx.log.detail("  " + l);
    teardown(ctx);
    events.emit(
        {{"event", "failed"},
         {"step", f.step},
         {"message", f.message},
         {"exit_code", f.exitCode},
         {"tail", f.tail},
         {"retryable", f.retryable},
         {"stopped", f.stopped},
         // The checks so far, unless they would not fit an event line.
         {"validation", ctx.validation.dump().size() < 32'000 ? ctx.validation : json::object()}});
    return f.stopped ? 3 : 1;
  }
  events.emit({{"event", "result"},
               {"image", ctx.finalImage.string()},
               {"manifest", ctx.finalManifest.string()},
               {"build_log", ctx.finalLog.string()},
               {"name", ctx.def.name},
               {"version", ctx.version},
               {"reused", ctx.reusable.has_value()}});
  return 0;
}

}  // namespace

int runBuildChild() {
  EventWriter events(STDOUT_FILENO);
  auto fail = [&](const std::string& step, const std::string& message) {
    events.emit({{"event", "failed"},
                 {"step", step},
                 {"message", message},
                 {"exit_code", 0},
                 {"tail", json::array()},
                 {"retryable", false},
                 {"stopped", false}});
    return 1;
  };
  JobSpec job;
  try {
    std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    job = jobSpecFromJson(json::parse(text));
  } catch (const std::exception& e) {
    return fail("setup", std::string("cannot read the job spec on stdin: ") + e.what());
  }
  log::init("build job=" + job.jobId, "info");

  try {
    enterPrivateMountNamespace();
    enterNewPidNamespace();  // from here on: PID 1 of the build's own namespace
  } catch (const std::exception& e) {
    return fail("setup",
                std::string(e.what()) + " (the build agent must run as root with CAP_SYS_ADMIN)");
  }

  // SIGTERM/SIGINT/SIGHUP are blocked already (enterNewPidNamespace); a thread takes them and
  // asks the build to stop.
  auto stopSource = stopOnTerminationSignals();

  std::optional<WorkDir> work;
  try {
    work.emplace(job.config.workDir, job.jobId + "-" + std::to_string(job.attempt));
  } catch (const std::exception& e) {
    return fail("setup", e.what());
  }
  int rc = 1;
  {
    BuildLog log(work->path() / "build.log", events);
    log.setStep("definition");
    std::optional<definition::ImageDefinition> def;
    try {
      def = definition::parseDefinition(job.definitionText, job.definitionSource);
    } catch (const std::exception& e) {
      log.error(e.what());
      return fail("definition", e.what());
    }
    log.detail("job " + job.jobId + " attempt " + std::to_string(job.attempt) + ", work dir " +
               work->path().string());
    BuildContext ctx(job, *def, log, stopSource.get_token(), work->path());
    rc = runPipeline(ctx, events);
    if (rc != 0 && job.config.keepFailedWorkDir) {
      work->keep();
      log.info("work dir kept for inspection: " + work->path().string());
    } else if (rc == 0 && job.keepWorkDir) {
      work->keep();
    }
  }
  return rc;
}

}  // namespace imgpipe::build
