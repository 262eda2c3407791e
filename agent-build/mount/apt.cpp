#include "agent-build/mount/apt.h"

#include <algorithm>
#include <cstdlib>

#include "agent-build/steps/build_context.h"
#include "agent-build/util/file_lock.h"
#include "common/error.h"
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
    store_.emplace(aptDir_ / "by-sha256");
    // This build's own archive directory, beside its disk; owned by root on disk, so the
    // sandbox's root owns it through the image's idmapped view.
    archives_.emplace(options_.scratch.empty() ? config_.workDir : options_.scratch,
                      "apt-archives-");
    fs::create_directories(archives_->path() / "partial");
    cacheBind_.emplace(session_.bindInto(archives_->path(), "/var/cache/apt/archives"));
  }
}

Apt::~Apt() {
  cacheBind_.reset();
}

void Apt::seedArchives() {
  const auto wanted = indexedDebs(session_.fs());
  FileLock lock(aptDir_ / "lock", stop_);
  const auto n = store_->seed(wanted, archives_->path());
  if (n > 0) log_.info("apt cache: " + std::to_string(n) + " packages from the shared store");
}

void Apt::storeDownloads() {
  FileLock lock(aptDir_ / "lock", stop_);
  store_->ingest(archives_->path());
}

void Apt::aptGet(const std::vector<std::string>& args, definition::Network network) {
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
  aptGet({"-o", "Acquire::Languages=none", "update"}, definition::Network::host);
}

void Apt::downloadThenRun(std::vector<std::string> args) {
  const bool offline = options_.network == definition::Network::none;
  if (cacheBind_ || offline) {
    if (cacheBind_) seedArchives();
    std::vector<std::string> download = {"-y", "--download-only"};
    download.insert(download.end(), args.begin(), args.end());
    aptGet(download, definition::Network::host);
    if (cacheBind_) storeDownloads();
  }
  std::vector<std::string> run = {"-y"};
  run.insert(run.end(), args.begin(), args.end());
  aptGet(run, offline ? definition::Network::none : definition::Network::host);
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
  aptGet(args, options_.network);
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
  archives_.reset();
  FileLock lock(aptDir_ / "lock", stop_);
  if (const auto freed = store_->prune(config_.aptCacheMaxSize); freed > 0)
    log_.info("pruned " + formatBytes(freed) + " from the apt cache (build.apt_cache.max_size)");
}

}  // namespace imgpipe::build
