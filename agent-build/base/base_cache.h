#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include "agent-build/config/build_config.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/steps/build_context.h"
#include "agent-build/util/exec.h"
#include "agent-build/util/file_lock.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Bases on the agent, under <cache_dir>/bases:
//   url-<sha256>.img                 downloaded images, named by their verified digest
//   unpacked-<sha256>.img            a compressed disk or Vagrant box's disk, by the packed digest
//   debootstrap-<recipe>.qcow2/.json debootstrap bases, rebuilt after debootstrap_max_age
//   rootfs-<recipe>.qcow2/.json      bases made from a root tarball or an OCI image, keyed by
//   oci-<recipe>.qcow2/.json         the source's digest and how the tree became a disk; rebuilt
//                                    after debootstrap_max_age too (the boot set is fetched)
//   path-digests/<hash>.json         digests of local bases, keyed by inode/size/mtime
// Every entry has a .lock: builds using an entry hold it shared, whoever creates or evicts it
// holds it exclusively — so eviction never removes a base a build is converting.
class BaseCache {
 public:
  struct Result {
    ResolvedBase base;
    std::optional<FileLock> lock;  // shared; keep it while the base is read
  };

  BaseCache(const BuildConfig& config, ExecContext exec, BuildLog& log);

  // `scratch` hosts a debootstrap run or a tree's unpacking. A path base must lie beneath
  // config.baseDirs. `mirrors` (the definition's) serve an OCI base pulled from a registry.
  Result resolve(const definition::BaseSpec& spec, const std::filesystem::path& scratch,
                 const definition::MirrorSpec& mirrors = {});

  // Removes least recently used entries until the cache fits base_cache.max_size; entries in
  // use are skipped.
  void evict();

 private:
  Result fromPath(const definition::PathBase& spec);
  // `path` (as a definition gives it, relative or absolute) opened beneath one of
  // config.baseDirs with no symlink on the way; throws naming `field` when it is beneath none.
  std::filesystem::path beneathBaseDirs(const std::string& path, const std::string& field) const;
  Result fromUrl(const definition::UrlBase& spec);
  Result fromDebootstrap(definition::DebootstrapBase spec,
                         const std::filesystem::path& scratch);
  // A root tarball or an OCI image, unpacked, made bootable and written onto a disk.
  Result fromTree(const definition::BaseSpec& spec, const std::filesystem::path& scratch,
                  const definition::MirrorSpec& mirrors);
  // A base made here (`make(output, work dir)`) once per recipe: `file` and its .json.
  Result made(
      const std::filesystem::path& file, const std::string& kind, const std::string& source,
      const std::filesystem::path& scratch,
      const std::function<void(const std::filesystem::path&, const std::filesystem::path&)>& make);
  // A compressed disk or a Vagrant box, unpacked once into unpacked-<sha256 of the packed>.img.
  Result unpacked(Result packed, definition::BasePacking packing);
  // Refuses an image that would make qemu-img read another file, or in a format not taken.
  void inspect(ResolvedBase& base, const std::string& expectedFormat);

  const BuildConfig& config_;
  ExecContext exec_;
  BuildLog& log_;
  std::filesystem::path dir_;
};

}  // namespace imgpipe::build
