#pragma once

#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/mount/apt_store.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/mount.h"
#include "agent-build/runner/build_log.h"
#include "common/temp_dir.h"

namespace imgpipe::build {

// apt-get in the image's sandbox, with the agent's shared package store (apt_store.h). While this
// object lives, a directory of this build's own is the image's /var/cache/apt/archives: before
// each download it is seeded with the stored packages the image's own index names by digest, and
// what apt downloaded is stored afterwards, so a rebuild downloads nothing twice and no build
// writes what another installs. The store's host-wide lock (<cache_dir>/apt/lock) is held while
// seeding and storing only.
// Progress comes from APT::Status-Fd. Downloads (update, --download-only) reach the network; the
// dpkg runs that follow, with the packages' maintainer scripts, get `Options::network`.
// Resource type.
class Apt {
 public:
  struct Options {
    bool installRecommends = false;
    definition::Network network = definition::Network::host;  // for dpkg and maintainer scripts
    // Where this build's archive directory lives (its work dir: gone with it whatever happens);
    // empty: build.work_dir.
    std::filesystem::path scratch;
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

  // Unmounts this build's archive directory and prunes the store to build.apt_cache.max_size (the
  // destructor does the unmount too, unchecked).
  void finish();

 private:
  void aptGet(const std::vector<std::string>& args, definition::Network network);
  // Downloads first (into the shared cache under its host lock, or into the image's own cache
  // when the dpkg run gets no network), then runs `args` from what was downloaded.
  void downloadThenRun(std::vector<std::string> args);
  void seedArchives();
  void storeDownloads();

  ChrootSession& session_;
  const BuildConfig& config_;
  BuildLog& log_;
  std::stop_token stop_;
  Options options_;
  std::filesystem::path aptDir_;
  std::optional<AptStore> store_;
  std::optional<TempDir> archives_;
  std::optional<Mount> cacheBind_;  // last: unmounted before archives_ goes
  std::string summary_;
};

}  // namespace imgpipe::build
