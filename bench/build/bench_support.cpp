#include "bench/build/bench_support.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
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

FixtureBase fixtureBase() {
  std::fprintf(stderr,
               "preparing the base (tests/build/fixture-base.yaml; made once, then cached)\n");
  fs::create_directories(kSharedCache);
  writeFileAtomic(kSharedCache / "fixture-config.yaml",
                  "build:\n  base_cache: {debootstrap_max_age: 720h, max_size: 20G}\n");
  const std::string out =
      run({agent().string(), "prepare-base", (source() / "tests/build/fixture-base.yaml").string(),
           "--work-dir", "/var/tmp/imgpipe-test-fixture-work", "--cache-dir", kSharedCache.string(),
           "--config", (kSharedCache / "fixture-config.yaml").string(), "--json"});
  const auto base = nlohmann::json::parse(out.substr(out.find('{')));
  return {base["base"].get<std::string>(), base["sha256"].get<std::string>()};
}

}  // namespace imgpipe::bench
