#pragma once

// What the build benchmarks share: where the agent and the sources are, running a command, timing.

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace imgpipe::bench {

namespace fs = std::filesystem;

// Shared with the tests between runs on one machine: the fixture base, the minbase tree.
inline const fs::path kSharedCache = "/var/cache/imgpipe-test";

fs::path agent();   // the built imgpipe-agent-build ($IMGPIPE_BUILD_DIR overrides)
fs::path source();  // the source tree ($IMGPIPE_SOURCE_DIR overrides)

// Runs `argv`, returns its stdout; throws on failure. Not quiet: its output lines go to stderr.
std::string run(std::vector<std::string> argv, bool quiet = true);

double timed(const std::function<void()>& fn);  // seconds

// The tests' fixture base (tests/build/fixture-base.yaml), made once and kept in kSharedCache.
struct FixtureBase {
  std::string file, sha256;
};
FixtureBase fixtureBase();

}  // namespace imgpipe::bench
