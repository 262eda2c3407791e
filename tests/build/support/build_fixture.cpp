#include "tests/build/support/build_fixture.h"

#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <tuple>

#include "agent-build/disk/loop_device.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/subprocess.h"

namespace imgpipe::build::test {
namespace {

// Every build test process gets its own mount namespace before main(): whatever it (or a build
// it starts) mounts disappears with the process, even when a test crashes; and its
// /proc/self/mountinfo is a meaningful place to look for leftovers.
[[maybe_unused]] const bool kPrivateMounts = [] {
  if (::unshare(CLONE_NEWNS) == 0) ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
  return true;
}();

std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

}  // namespace

fs::path sourceDir() {
  return env("IMGPIPE_SOURCE_DIR", IMGPIPE_TEST_SOURCE_DIR);
}
fs::path agentBinary() {
  return fs::path(env("IMGPIPE_BUILD_DIR", IMGPIPE_TEST_BUILD_DIR)) / "bin" / "imgpipe-agent-build";
}

const FixtureBase& fixtureBase() {
  static std::once_flag once;
  static FixtureBase base;
  std::call_once(once, [] {
    fs::create_directories(kSharedCache);
    const fs::path config = kSharedCache / "fixture-config.yaml";
    // Bases made for tests stay for a month; the recipe digest changes when the recipe does.
    writeFileAtomic(config, "build:\n  base_cache: {debootstrap_max_age: 720h, max_size: 20G}\n");
    SubprocessOptions o;
    o.argv = {agentBinary().string(),
              "prepare-base",
              (sourceDir() / "tests/build/fixture-base.yaml").string(),
              "--work-dir",
              "/var/tmp/imgpipe-test-fixture-work",
              "--cache-dir",
              kSharedCache.string(),
              "--config",
              config.string(),
              "--json"};
    o.captureStdout = true;
    o.timeout = std::chrono::minutes(20);
    o.onLine = [](std::string_view l) {
      std::fprintf(stderr, "[fixture] %.*s\n", static_cast<int>(l.size()), l.data());
    };
    auto out = checkCommand(o);
    auto j = nlohmann::json::parse(out.substr(out.find('{')));
    base.file = j.at("base").get<std::string>();
    base.sha256 = j.at("sha256");
  });
  return base;
}

TestArea::TestArea(const std::string& name) : dir_("/var/tmp", "imgpipe-bt-" + name + "-") {
  fs::create_directories(work());
  fs::create_directories(out());
  fs::create_directories(cache() / "results");
  for (const char* shared : {"bases", "apt"}) {
    fs::create_directories(kSharedCache / shared);
    fs::create_symlink(kSharedCache / shared, cache() / shared);
  }
}

BuildConfig TestArea::config() const {
  BuildConfig c;
  c.workDir = work();
  c.cacheDir = cache();
  c.outputDir = out();
  c.helper = agentBinary();
  c.debootstrapMaxAge = std::chrono::hours(720);
  c.minFreeSpace = 512ull << 20;
  // Path bases the tests use: the machine-wide fixture cache and this test's own area.
  c.baseDirs = {kSharedCache / "bases", root()};
  return c;
}

fs::path TestArea::writeDefinition(const std::string& name, const std::string& yaml) const {
  auto p = root() / name;
  writeFileAtomic(p, yaml);
  return p;
}

fs::path TestArea::writeConfig(const BuildConfig& c) const {
  std::ostringstream y;
  y << "build:\n  work_dir: " << c.workDir.string() << "\n  cache_dir: " << c.cacheDir.string()
    << "\n  output_dir: " << c.outputDir.string() << "\n  min_free_space: " << c.minFreeSpace
    << "\n  keep_failed_work_dir: " << (c.keepFailedWorkDir ? "true" : "false")
    << "\n  compression: {type: " << toString(c.compression) << "}"
    << "\n  base_cache: {debootstrap_max_age: 720h}\n  base_dirs:\n";
  for (const auto& d : c.baseDirs)
    y << "    - " << d.string() << "\n";
  auto p = root() / "agent-build.yaml";
  writeFileAtomic(p, y.str());
  return p;
}

AgentRun runAgent(const TestArea& area, const std::string& command, const fs::path& definition,
                  const fs::path& out, std::chrono::minutes timeout, const std::string& streamTag) {
  auto config = area.writeConfig(area.config());
  SubprocessOptions o;
  o.argv = {agentBinary().string(), command,      definition.string(),  "--config",
            config.string(),        "--work-dir", area.work().string(), "--json"};
  if (command == "build") o.argv.insert(o.argv.end(), {"--out", out.string()});
  o.captureStdout = true;
  o.timeout = timeout;
  AgentRun r;
  o.onLine = [&](std::string_view l) {
    r.log += std::string(l) + "\n";
    if (!streamTag.empty())
      std::fprintf(stderr, "[%s] %.*s\n", streamTag.c_str(), static_cast<int>(l.size()), l.data());
  };
  auto result = runCommand(o);
  r.exitCode = result.exitCode;
  if (result.exitCode == 0 && command == "build")
    r.manifest = nlohmann::json::parse(result.stdoutText);
  return r;
}

std::vector<std::string> leftoversUnder(const fs::path& prefix) {
  std::vector<std::string> found;
  const std::string pre = prefix.string();
  std::vector<std::string> ourLoops;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/block", ec)) {
    auto name = e.path().filename().string();
    if (!name.starts_with("loop") || !loopBound(name)) continue;
    if (loopBackingFile(name).starts_with(pre)) {
      ourLoops.push_back("/dev/" + name);
      found.push_back("loop device /dev/" + name + " -> " + loopBackingFile(name));
    }
  }
  std::ifstream mi("/proc/self/mountinfo");
  for (std::string line; std::getline(mi, line);) {
    std::istringstream f(line);
    std::string id, parent, devno, root, mp;
    f >> id >> parent >> devno >> root >> mp;
    auto dash = line.find(" - ");
    std::string source;
    if (dash != std::string::npos) {
      std::istringstream rest(line.substr(dash + 3));
      std::string type;
      rest >> type >> source;
    }
    bool loopSource = false;
    for (const auto& l : ourLoops)
      loopSource |= source.starts_with(l);
    if (mp.starts_with(pre) || loopSource) found.push_back("mount " + mp + " (" + source + ")");
  }
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    auto pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos || std::stoi(pid) == ::getpid())
      continue;
    std::string cmdline;
    try {
      cmdline = readFile(e.path() / "cmdline");
    } catch (const Error&) {
      continue;
    }
    for (auto& c : cmdline)
      if (c == '\0') c = ' ';
    std::error_code lec;
    auto procRoot = fs::read_symlink(e.path() / "root", lec).string();
    auto cwd = fs::read_symlink(e.path() / "cwd", lec).string();
    if (cmdline.find(pre) != std::string::npos || procRoot.starts_with(pre) || cwd.starts_with(pre))
      found.push_back("process " + pid + ": " + cmdline);
  }
  return found;
}

namespace {

// The byte range of the partition labelled cloudimg-rootfs in a raw disk (file or export).
std::pair<std::uint64_t, std::uint64_t> rootPartitionRange(const fs::path& raw) {
  auto table = nlohmann::json::parse(checkCommand({"sfdisk", "--json", raw.string()}));
  for (const auto& p : table.at("partitiontable").at("partitions")) {
    std::uint64_t start = p.at("start").get<std::uint64_t>() * 512,
                  size = p.at("size").get<std::uint64_t>() * 512;
    SubprocessOptions o;
    o.argv = {"blkid",     "-p",
              "-o",        "value",
              "-s",        "LABEL",
              "-O",        std::to_string(start),
              "-S",        std::to_string(size),
              raw.string()};
    o.captureStdout = true;
    if (runCommand(o).stdoutText.find("cloudimg-rootfs") != std::string::npos) return {start, size};
  }
  throw Error("no partition labelled cloudimg-rootfs in " + raw.string());
}

}  // namespace

WritableImage::WritableImage(const fs::path& qcow2, const fs::path& scratch) {
  fs::create_directories(scratch);
  raw_ = scratch / "export.raw";
  mnt_ = scratch / "root";
  pidFile_ = scratch / "qsd.pid";
  fs::create_directories(mnt_);
  writeFileAtomic(raw_, "");
  checkCommand({"qemu-storage-daemon", "--blockdev",
                "driver=file,node-name=file,filename=" + qcow2.string(), "--blockdev",
                "driver=qcow2,node-name=fmt,file=file", "--export",
                "type=fuse,id=exp,node-name=fmt,mountpoint=" + raw_.string() + ",writable=on",
                "--daemonize", "--pidfile", pidFile_.string()});
  auto [start, size] = rootPartitionRange(raw_);
  checkCommand({"mount", "-o",
                "loop,offset=" + std::to_string(start) + ",sizelimit=" + std::to_string(size),
                raw_.string(), mnt_.string()});
  mounted_ = true;
}

WritableImage::~WritableImage() {
  SubprocessOptions o;
  if (mounted_) {
    o.argv = {"umount", mnt_.string()};
    runCommand(o);
  }
  // The daemon flushes the qcow2 and removes its FUSE mount on SIGTERM.
  try {
    pid_t pid = std::stoi(readFile(pidFile_));
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i)
      ::usleep(50'000);
  } catch (const std::exception&) {
  }
}

MountedImage::MountedImage(const fs::path& qcow2, const fs::path& scratch) {
  fs::create_directories(scratch);
  raw_ = scratch / "inspect.raw";
  mnt_ = scratch / "inspect-root";
  fs::create_directories(mnt_);
  checkCommand({"qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2.string(), raw_.string()});
  diskSize_ = fs::file_size(raw_);
  std::tie(start_, size_) = rootPartitionRange(raw_);
  checkCommand(
      {"mount", "-o",
       "ro,loop,noload,offset=" + std::to_string(start_) + ",sizelimit=" + std::to_string(size_),
       raw_.string(), mnt_.string()});
}

MountedImage::~MountedImage() {
  SubprocessOptions o;
  o.argv = {"umount", mnt_.string()};
  runCommand(o);
  std::error_code ec;
  fs::remove(raw_, ec);
}

void RecordingReporter::progress(const agent::ProgressInfo& info) {
  std::lock_guard l(mutex_);
  progress_.push_back(info);
}
void RecordingReporter::log(agent::LogLevel level, const std::string& step,
                            const std::string& message, std::uint64_t durationMs) {
  std::lock_guard l(mutex_);
  logs_.push_back({level, step, message, durationMs});
}
void RecordingReporter::completed(const agent::TaskResultInfo& result) {
  std::lock_guard l(mutex_);
  result_ = result;
}
void RecordingReporter::failed(const agent::TaskFailureInfo& failure) {
  std::lock_guard l(mutex_);
  failure_ = failure;
}
std::vector<RecordingReporter::Log> RecordingReporter::logs() const {
  std::lock_guard l(mutex_);
  return logs_;
}
std::vector<agent::ProgressInfo> RecordingReporter::progressEvents() const {
  std::lock_guard l(mutex_);
  return progress_;
}
std::optional<agent::TaskResultInfo> RecordingReporter::result() const {
  std::lock_guard l(mutex_);
  return result_;
}
std::optional<agent::TaskFailureInfo> RecordingReporter::failure() const {
  std::lock_guard l(mutex_);
  return failure_;
}
std::string RecordingReporter::stepsLogged() const {
  std::lock_guard l(mutex_);
  std::string out;
  for (const auto& log : logs_)
    if (log.level == agent::LogLevel::info) out += (out.empty() ? "" : ",") + log.step;
  return out;
}

HostBait::HostBait()
    : tcp_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)),
      unix_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)),
      abstractName_("imgpipe-bait-" + std::to_string(::getpid()) + "-" +
                    std::to_string(std::random_device{}() & 0xffff)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (!tcp_ || ::bind(tcp_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(tcp_.get(), 16) != 0 ||
      ::getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throwErrno("HostBait: a listener on 127.0.0.1");
  port_ = ntohs(a.sin_port);
  sockaddr_un u{};
  u.sun_family = AF_UNIX;
  std::memcpy(u.sun_path + 1, abstractName_.data(), abstractName_.size());
  if (!unix_ ||
      ::bind(unix_.get(), reinterpret_cast<sockaddr*>(&u),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstractName_.size())) !=
          0 ||
      ::listen(unix_.get(), 16) != 0)
    throwErrno("HostBait: an abstract unix socket");
}

agent::TaskSpec buildTask(const std::string& jobId, const std::string& definition,
                          const std::string& name, std::map<std::string, std::string> bundleFiles) {
  agent::TaskSpec t;
  t.taskId = jobId + "-task";
  t.jobId = jobId;
  t.step = "build";
  t.kind = agent::BuildSpec{definition, name, "", "", "", std::move(bundleFiles)};
  return t;
}

}  // namespace imgpipe::build::test
