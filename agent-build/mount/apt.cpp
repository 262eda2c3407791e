#include "agent-build/mount/apt.h"

#include <algorithm>
#include <cstdlib>

#include "agent-build/steps/build_context.h"
#include "agent-build/util/file_lock.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

bool looksTransient(const std::vector<std::string>& tail) {
  for (const auto& l : tail)
    if (l.find("Failed to fetch") != std::string::npos ||
        l.find("Temporary failure resolving") != std::string::npos ||
        l.find("Could not resolve") != std::string::npos ||
        l.find("Connection timed out") != std::string::npos ||
        l.find("Unable to fetch some archives") != std::string::npos)
      return true;
  return false;
}

// Removes the oldest .debs until the cache fits; files touched in the last hour stay (another
// build may be about to install them).
void pruneAptCache(const fs::path& archives, std::uint64_t maxSize, BuildLog& log) {
  struct Deb {
    fs::path path;
    fs::file_time_type time;
    std::uint64_t size;
  };
  std::vector<Deb> debs;
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(archives, ec)) {
    if (e.path().extension() != ".deb" || !e.is_regular_file()) continue;
    debs.push_back({e.path(), e.last_write_time(), e.file_size()});
    total += debs.back().size;
  }
  if (total <= maxSize) return;
  std::sort(debs.begin(), debs.end(), [](const Deb& a, const Deb& b) { return a.time < b.time; });
  const auto recent = fs::file_time_type::clock::now() - std::chrono::hours(1);
  std::uint64_t freed = 0;
  for (const auto& d : debs) {
    if (total <= maxSize || d.time > recent) break;
    fs::remove(d.path, ec);
    total -= d.size;
    freed += d.size;
  }
  if (freed > 0)
    log.info("pruned " + formatBytes(freed) + " from the apt cache (build.apt_cache.max_size)");
}

}  // namespace

Apt::Apt(ChrootSession& session, const BuildConfig& config, BuildLog& log, std::stop_token stop,
         Options options)
    : session_(session),
      config_(config),
      log_(log),
      stop_(std::move(stop)),
      options_(options),
      aptDir_(config.cacheDir / "apt") {
  if (config_.aptCache) {
    fs::create_directories(aptDir_ / "archives" / "partial");
    cacheBind_.emplace(session_.bindInto(aptDir_ / "archives", "/var/cache/apt/archives"));
  }
}

Apt::~Apt() {
  cacheBind_.reset();
}

void Apt::aptGet(const std::vector<std::string>& args, bool noLocking,
                 definition::Network network) {
  std::vector<std::string> argv = {
      "apt-get",
      "-q",
      "-o",
      "APT::Status-Fd=1",
      "-o",
      "Acquire::Retries=3",
      "-o",
      "Dpkg::Options::=--force-confdef",
      "-o",
      "Dpkg::Options::=--force-confold",
      "-o",
      std::string("APT::Install-Recommends=") + (options_.installRecommends ? "true" : "false")};
  if (noLocking) argv.insert(argv.end(), {"-o", "Debug::NoLocking=true"});
  argv.insert(argv.end(), args.begin(), args.end());
  auto o = session_.commandOptions(argv, {}, network);
  BuildLog* log = &log_;
  std::string* summary = &summary_;
  o.onLine = [log, summary](std::string_view line) {
    // APT::Status-Fd lines: "dlstatus:<n>:<percent>:<what>" and "pmstatus:<pkg>:<percent>:<what>".
    if (line.starts_with("dlstatus:") || line.starts_with("pmstatus:")) {
      auto a = line.find(':', 9);
      auto b = a == std::string_view::npos ? a : line.find(':', a + 1);
      if (b != std::string_view::npos) {
        double pct = std::atof(std::string(line.substr(a + 1, b - a - 1)).c_str());
        log->progress(static_cast<std::uint64_t>(pct * 10), 1000, "permille");
      }
      return;
    }
    if (line.find("newly installed") != std::string_view::npos) *summary = line;
    log->output(line);
  };
  auto command = describeSandboxed(o.argv);
  auto result = runCommand(std::move(o));
  if (result.exitCode != 0 || result.timedOut || result.stopped) {
    if (stop_.stop_requested()) throw Error("build stopped", ErrorKind::stopped);
    // A mirror that did not answer, DNS: the coordinator may run the build again.
    if (looksTransient(result.tail)) throw CommandError(command, result, ErrorKind::transient);
    throw CommandError(command, result);
  }
}

void Apt::update() {
  aptGet({"-o", "Acquire::Languages=none", "update"}, false, definition::Network::host);
}

void Apt::downloadThenRun(std::vector<std::string> args) {
  const bool offline = options_.network == definition::Network::none;
  if (cacheBind_ || offline) {
    std::optional<FileLock> lock;
    if (cacheBind_) lock.emplace(aptDir_ / "lock", stop_);
    std::vector<std::string> download = {"-y", "--download-only"};
    download.insert(download.end(), args.begin(), args.end());
    aptGet(download, false, definition::Network::host);
  }
  std::vector<std::string> run = {"-y"};
  run.insert(run.end(), args.begin(), args.end());
  aptGet(run, cacheBind_.has_value(),
         offline ? definition::Network::none : definition::Network::host);
}

void Apt::install(const std::vector<std::string>& packages) {
  if (packages.empty()) return;
  std::vector<std::string> args = {"install"};
  args.insert(args.end(), packages.begin(), packages.end());
  downloadThenRun(args);
}

void Apt::distUpgrade() {
  downloadThenRun({"dist-upgrade"});
}

void Apt::purge(const std::vector<std::string>& packages) {
  if (packages.empty()) return;
  std::vector<std::string> args = {"-y", "purge", "--autoremove"};
  args.insert(args.end(), packages.begin(), packages.end());
  aptGet(args, cacheBind_.has_value(), options_.network);
}

void Apt::preseed(const std::string& selections) {
  auto o = session_.commandOptions({"debconf-set-selections"});
  o.input = selections;
  session_.run(std::move(o));
}

void Apt::finish() {
  if (!cacheBind_) return;
  cacheBind_->unmount();
  cacheBind_.reset();
  FileLock lock(aptDir_ / "lock", stop_);
  pruneAptCache(aptDir_ / "archives", config_.aptCacheMaxSize, log_);
}

}  // namespace imgpipe::build
