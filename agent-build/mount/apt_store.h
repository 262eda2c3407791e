#pragma once

// The package cache builds share, kept so that no build can put a package into another's image.
// The cache is never mounted where a definition's code runs. Files live by the SHA-256 the agent
// computed of them (<cache_dir>/apt/by-sha256/<hex>.deb), owned by an id no sandbox maps and
// read-only; a build's own /var/cache/apt/archives is a private directory, seeded before apt
// downloads with the stored files whose digest the build's own package index names (apt, which
// takes a cached file of the right size as downloaded, then finds only files that are what that
// index says), and what apt downloaded there is stored afterwards under the digest it has. A file
// a hostile build plants is stored under its own digest, which no genuine index names.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent-build/util/image_fs.h"

namespace imgpipe::build {

// One package of an apt index (the image's /var/lib/apt/lists/*_Packages). Value type.
struct IndexedDeb {
  std::string archiveName;  // as apt names it in /var/cache/apt/archives
  std::string sha256;       // hex, lower case
  std::uint64_t size = 0;
};

// apt's file name for a package in its archive cache: name_version_arch.deb with ':' and '_'
// written %3a and %5f (and '.' of the architecture %2e), as apt's pkgAcqArchive quotes them.
std::string aptArchiveName(std::string_view package, std::string_view version,
                           std::string_view architecture);

// Every package the image's apt lists name with a SHA256. Throws nothing for what it cannot read.
std::vector<IndexedDeb> indexedDebs(const ImageFs& image);

class AptStore {
 public:
  explicit AptStore(std::filesystem::path dir);

  const std::filesystem::path& dir() const { return dir_; }
  // Links (or copies) into `archives` each stored file one of `wanted` names; returns how many.
  std::size_t seed(const std::vector<IndexedDeb>& wanted, const std::filesystem::path& archives);
  // Stores the .debs in `archives` that are not the store's own, each under its digest; returns
  // how many were new.
  std::size_t ingest(const std::filesystem::path& archives);
  // Removes the oldest files until the store fits in `maxSize`; files used in the last hour stay.
  // Returns the bytes freed.
  std::uint64_t prune(std::uint64_t maxSize);

 private:
  std::filesystem::path dir_;
};

}  // namespace imgpipe::build
