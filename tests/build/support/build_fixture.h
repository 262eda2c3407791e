#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "common/agent/task_runner.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"

namespace imgpipe::build::test {

namespace fs = std::filesystem;

// Shared between test runs on one machine: the fixture base, the apt cache.
inline const fs::path kSharedCache = "/var/cache/imgpipe-test";

fs::path agentBinary();  // the built imgpipe-agent-build
fs::path sourceDir();

// The cloud-like fixture base (tests/build/fixture-base.yaml), made on first use with the agent's
// own debootstrap-base code and cached in kSharedCache. Thread-safe, made once per process.
struct FixtureBase {
  fs::path file;
  std::string sha256;
};
const FixtureBase& fixtureBase();

// A scratch area for one test under /var/tmp: work, output and cache dirs. The cache shares the
// machine-wide bases and apt cache (symlinks) but has its own results, so a test never reuses
// another run's image by accident. Removed when the test ends, whatever happened.
class TestArea {
 public:
  explicit TestArea(const std::string& name);
  const fs::path& root() const { return dir_.path(); }
  fs::path work() const { return root() / "work"; }
  fs::path out() const { return root() / "out"; }
  fs::path cache() const { return root() / "cache"; }
  BuildConfig config() const;  // work/cache/output dirs here, helper = agentBinary()
  fs::path writeDefinition(const std::string& name, const std::string& yaml) const;
  fs::path writeConfig(const BuildConfig& c) const;  // a YAML file with a build: section

 private:
  TempDir dir_;
};

// The agent's CLI run on a definition, `command` build or prepare-base, with the area's config
// (its root is a base dir), as an operator runs it; build's --json manifest parsed on success.
struct AgentRun {
  int exitCode = -1;
  std::string log;  // stderr, line by line
  nlohmann::json manifest;
};
// `streamTag` non-empty: each line also goes to stderr as "[tag] line" (long builds in CI).
AgentRun runAgent(const TestArea& area, const std::string& command, const fs::path& definition,
                  const fs::path& out, std::chrono::minutes timeout = std::chrono::minutes(30),
                  const std::string& streamTag = "");

// Everything a build could leave behind, as seen from this test process: mounts in its mount
// namespace under `prefix` (or from loop devices backed by files under it), loop devices backed
// by files under `prefix`, processes whose command line, root or cwd mentions `prefix`.
std::vector<std::string> leftoversUnder(const fs::path& prefix);

// A finished qcow2 opened read-only by the test itself, independently of the agent's code:
// converted to a temporary raw file, its root partition loop-mounted ro,noload (mount -o loop
// sets autoclear, and the mount lives in the test's private mount namespace).
class MountedImage {
 public:
  MountedImage(const fs::path& qcow2, const fs::path& scratch);
  ~MountedImage();
  const fs::path& root() const { return mnt_; }
  std::uint64_t diskSize() const { return diskSize_; }
  std::uint64_t rootStart() const { return start_; }
  std::uint64_t rootSize() const { return size_; }
  const fs::path& raw() const { return raw_; }

 private:
  fs::path raw_, mnt_;
  std::uint64_t diskSize_ = 0, start_ = 0, size_ = 0;
};

// A qcow2 opened READ-WRITE by the test, to make a deliberately broken variant of an image
// offline: qemu-storage-daemon's writable FUSE export of it, its root partition (labelled
// cloudimg-rootfs) loop-mounted rw. Unmounted and the daemon stopped (flushing the qcow2) on
// destruction. Meant for an overlay on the image under test, never for the image itself.
class WritableImage {
 public:
  WritableImage(const fs::path& qcow2, const fs::path& scratch);
  ~WritableImage();
  WritableImage(const WritableImage&) = delete;
  WritableImage& operator=(const WritableImage&) = delete;
  const fs::path& root() const { return mnt_; }

 private:
  fs::path raw_, mnt_, pidFile_;
  bool mounted_ = false;
};

// A TaskReporter that keeps everything it is told, for assertions.
class RecordingReporter : public agent::TaskReporter {
 public:
  struct Log {
    agent::LogLevel level;
    std::string step, message;
    std::uint64_t durationMs;
  };
  void progress(const agent::ProgressInfo& info) override;
  void log(agent::LogLevel level, const std::string& step, const std::string& message,
           std::uint64_t durationMs) override;
  void completed(const agent::TaskResultInfo& result) override;
  void failed(const agent::TaskFailureInfo& failure) override;

  std::vector<Log> logs() const;
  std::vector<agent::ProgressInfo> progressEvents() const;
  std::optional<agent::TaskResultInfo> result() const;
  std::optional<agent::TaskFailureInfo> failure() const;
  std::string stepsLogged() const;  // "fetch_base,fetch_inputs,..." (steps with a duration)

 private:
  mutable std::mutex mutex_;
  std::vector<Log> logs_;
  std::vector<agent::ProgressInfo> progress_;
  std::optional<agent::TaskResultInfo> result_;
  std::optional<agent::TaskFailureInfo> failure_;
};

// What the isolation probes must not reach on the build host (issue 23): a TCP service listening
// on the host's 127.0.0.1 (an ephemeral port) and an abstract unix socket of the host's network
// namespace, both listening for as long as the object lives. Resource type.
class HostBait {
 public:
  HostBait();
  HostBait(const HostBait&) = delete;
  HostBait& operator=(const HostBait&) = delete;
  std::uint16_t loopbackPort() const { return port_; }
  std::string loopbackPortText() const { return std::to_string(port_); }
  const std::string& abstractName() const { return abstractName_; }

 private:
  UniqueFd tcp_, unix_;
  std::uint16_t port_ = 0;
  std::string abstractName_;
};

// A build task as the coordinator sends it; `bundleFiles` are the files the definition refers to.
agent::TaskSpec buildTask(const std::string& jobId, const std::string& definition,
                          const std::string& name = "def.yaml",
                          std::map<std::string, std::string> bundleFiles = {});

}  // namespace imgpipe::build::test
