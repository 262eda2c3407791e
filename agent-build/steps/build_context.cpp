#include "agent-build/steps/build_context.h"

#include <ctime>

namespace imgpipe::build {

BuildContext::BuildContext(JobSpec jobSpec, definition::ImageDefinition definition,
                           BuildLog& buildLog, std::stop_token stopToken, std::filesystem::path dir)
    : job(std::move(jobSpec)),
      def(std::move(definition)),
      config(job.config),
      log(buildLog),
      stop(std::move(stopToken)),
      workDir(std::move(dir)),
      startedAt(std::chrono::system_clock::now()),
      version(job.imageVersion) {
  if (version.empty()) throw std::logic_error("a build needs the job's version");
}

ExecContext BuildContext::exec() const {
  return exec(config.commandTimeout);
}

ExecContext BuildContext::exec(std::chrono::milliseconds timeout) const {
  ExecContext e;
  e.stop = stop;
  e.timeout = timeout;
  BuildLog* l = &log;
  e.output = [l](std::string_view line) { l->output(line); };
  return e;
}

void BuildContext::checkStop() const {
  if (stop.stop_requested()) throw Error("build stopped", ErrorKind::stopped);
}

std::function<void(std::uint64_t, std::uint64_t)> BuildContext::progress() const {
  BuildLog* l = &log;
  return [l](std::uint64_t done, std::uint64_t total) { l->progress(done, total); };
}

ChrootSession& BuildContext::session() {
  if (!chroot) throw std::logic_error("no chroot session: the mount step has not run");
  return *chroot;
}

std::string outputStem(const BuildContext& ctx) {
  return ctx.def.name + "-" + ctx.version;
}

std::string isoTime(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace imgpipe::build
