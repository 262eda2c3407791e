#include "bench/build/bench_support.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/subprocess.h"

namespace imgpipe::bench {
namespace {

std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

}  // namespace

fs::path agent() {
  return fs::path(env("IMGPIPE_BUILD_DIR", IMGPIPE_BENCH_BUILD_DIR)) / "bin/imgpipe-agent-build";
}

fs::path source() {
  return env("IMGPIPE_SOURCE_DIR", IMGPIPE_BENCH_SOURCE_DIR);
}

std::string run(std::vector<std::string> argv, bool quiet) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(60);
  if (!quiet)
    o.onLine = [](std::string_view l) {
      std::fprintf(stderr, "    %.*s\n", static_cast<int>(l.size()), l.data());
    };
  return checkCommand(o);
}

double timed(const std::function<void()>& fn) {
  auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace imgpipe::bench
