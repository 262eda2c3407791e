// Step 5c: packages installed, upgraded and removed with the image's apt. The agent's package
// cache is bind-mounted as the image's /var/cache/apt/archives, so a rebuild downloads nothing
// again. Builds share that cache: downloads into it are serialized by a host lock (apt's own
// lock would make a second build fail at once); installing from it needs no lock.
#include <filesystem>
#include <regex>

#include "agent-build/steps/step.h"
#include "agent-build/util/file_lock.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

bool looksTransient(const std::vector<std::string>& tail) {
  for (const auto& l : tail)
    if (l.find("Failed to fetch") != std::string::npos || l.find("Temporary failure resolving") != std::string::npos ||
        l.find("Could not resolve") != std::string::npos || l.find("Connection timed out") != std::string::npos ||
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
  if (freed > 0) log.info("pruned " + formatBytes(freed) + " from the apt cache (build.apt_cache.max_size)");
}

class PackagesStep : public Step {
 public:
  std::string_view name() const override { return "packages"; }
  std::string skipReason(const ImageDefinition& def) const override {
    const auto& p = def.packages;
    return p.install.empty() && p.remove.empty() && !p.upgrade ? "no packages to install, upgrade or remove" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& session = ctx.session();
    const auto& p = ctx.def.packages;
    const fs::path aptDir = ctx.config.cacheDir / "apt";
    const fs::path archives = aptDir / "archives";
    std::optional<Mount> cacheBind;
    if (ctx.config.aptCache) {
      fs::create_directories(archives / "partial");
      cacheBind.emplace(session.bindInto(archives, "/var/cache/apt/archives"));
    }

    std::string newlyInstalled;
    auto aptGet = [&](std::vector<std::string> args, bool noLocking) {
      std::vector<std::string> argv = {"apt-get", "-q", "-o", "APT::Status-Fd=1", "-o", "Acquire::Retries=3",
                                       "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                                       "-o", std::string("APT::Install-Recommends=") + (p.installRecommends ? "true" : "false")};
      if (noLocking) argv.insert(argv.end(), {"-o", "Debug::NoLocking=true"});
      argv.insert(argv.end(), args.begin(), args.end());
      auto o = session.commandOptions(argv);
      BuildLog* log = &ctx.log;
      o.onLine = [log, &newlyInstalled](std::string_view line) {
        // APT::Status-Fd lines: "dlstatus:<n>:<percent>:<what>" and "pmstatus:<pkg>:<percent>:<what>".
        if (line.starts_with("dlstatus:") || line.starts_with("pmstatus:")) {
          auto a = line.find(':', 9);
          auto b = a == std::string_view::npos ? a : line.find(':', a + 1);
          if (b != std::string_view::npos) {
            double pct = std::atof(std::string(line.substr(a + 1, b - a - 1)).c_str());
            log->progress(static_cast<std::uint64_t>(pct * 10), 1000);
          }
          return;
        }
        if (line.find("newly installed") != std::string_view::npos) newlyInstalled = line;
        log->output(line);
      };
      auto command = joinCommand(o.argv);
      auto result = runCommand(std::move(o));
      if (result.exitCode != 0 || result.timedOut || result.stopped) {
        ctx.checkStop();
        if (looksTransient(result.tail)) throw RetryableCommandError(command, result);
        throw CommandError(command, result);
      }
    };
    const bool shared = ctx.config.aptCache;

    if (p.update) {
      ctx.log.info("apt-get update");
      aptGet({"-o", "Acquire::Languages=none", "update"}, false);
    }
    if (shared && (p.upgrade || !p.install.empty())) {
      FileLock lock(aptDir / "lock", ctx.stop);
      ctx.log.info("downloading packages into the agent's apt cache");
      if (p.upgrade) aptGet({"-y", "--download-only", "dist-upgrade"}, false);
      if (!p.install.empty()) {
        std::vector<std::string> args = {"-y", "--download-only", "install"};
        args.insert(args.end(), p.install.begin(), p.install.end());
        aptGet(args, false);
      }
    }
    if (p.upgrade) {
      ctx.log.info("apt-get dist-upgrade");
      aptGet({"-y", "dist-upgrade"}, shared);
    }
    if (!p.install.empty()) {
      ctx.log.info("apt-get install " + std::to_string(p.install.size()) + " packages");
      std::vector<std::string> args = {"-y", "install"};
      args.insert(args.end(), p.install.begin(), p.install.end());
      aptGet(args, shared);
    }
    std::string summary = newlyInstalled;
    if (!p.remove.empty()) {
      ctx.log.info("apt-get purge " + std::to_string(p.remove.size()) + " packages");
      std::vector<std::string> args = {"-y", "purge", "--autoremove"};
      args.insert(args.end(), p.remove.begin(), p.remove.end());
      aptGet(args, shared);
    }
    if (cacheBind) {
      cacheBind->unmount();
      cacheBind.reset();
      FileLock lock(aptDir / "lock", ctx.stop);
      pruneAptCache(archives, ctx.config.aptCacheMaxSize, ctx.log);
    }
    if (summary.empty()) summary = "packages up to date";
    return summary;
  }
};

}  // namespace

std::unique_ptr<Step> makePackagesStep() { return std::make_unique<PackagesStep>(); }

}  // namespace imgpipe::build
