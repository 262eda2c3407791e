#pragma once

#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/mount.h"
#include "agent-build/runner/build_log.h"

namespace imgpipe::build {

// apt-get in the image's sandbox, with the agent's shared package cache. While this object lives,
// the cache (<cache_dir>/apt/archives) is bind-mounted as the image's /var/cache/apt/archives, so a
// rebuild downloads nothing twice. Several builds share that directory: downloads into it take
// a host-wide lock (<cache_dir>/apt/lock) — apt's own lock would make the second build fail at
// once — and installing from it runs without apt's lock, reading finished files only.
// Progress comes from APT::Status-Fd. Downloads (update, --download-only) reach the network; the
// dpkg runs that follow, with the packages' maintainer scripts, get `Options::network`.
// Resource type.
class Apt {
 public:
  struct Options {
    bool installRecommends = false;
    definition::Network network = definition::Network::host;  // for dpkg and maintainer scripts
  };
  Apt(ChrootSession& session, const BuildConfig& config, BuildLog& log, std::stop_token stop,
      Options options);
  ~Apt();
  Apt(const Apt&) = delete;
  Apt& operator=(const Apt&) = delete;

  void update();
  void install(const std::vector<std::string>& packages);
  void distUpgrade();
  void purge(const std::vector<std::string>& packages);
  // Sets debconf answers before a package asks (noninteractive installs take the defaults).
  void preseed(const std::string& selections);

  // apt's "N upgraded, M newly installed, ..." line of the last install, or "".
  const std::string& summary() const { return summary_; }

  // Unmounts the cache and prunes it to build.apt_cache.max_size (the destructor does the
  // unmount too, unchecked).
  void finish();

 private:
  void aptGet(const std::vector<std::string>& args, bool noLocking, definition::Network network);
  // Downloads first (into the shared cache under its host lock, or into the image's own cache
  // when the dpkg run gets no network), then runs `args` from what was downloaded.
  void downloadThenRun(std::vector<std::string> args);

  ChrootSession& session_;
  const BuildConfig& config_;
  BuildLog& log_;
  std::stop_token stop_;
  Options options_;
  std::filesystem::path aptDir_;
  std::optional<Mount> cacheBind_;
  std::string summary_;
};

}  // namespace imgpipe::build
