#include "agent-build/base/base_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "agent-build/base/bootable_tree.h"
#include "agent-build/base/debootstrap_base.h"
#include "agent-build/base/download.h"
#include "agent-build/base/tree_disk.h"
#include "agent-build/base/tree_sources.h"
#include "agent-build/base/unpack_base.h"
#include "agent-build/disk/qemu_img.h"
#include "common/beneath.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/temp_dir.h"
#include "common/units.h"
#include "definition/parse_definition.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path lockOf(const fs::path& entry) {
  fs::path l = entry;
  l += ".lock";
  return l;
}

void touch(const fs::path& p) {
  std::error_code ec;
  fs::last_write_time(p, fs::file_time_type::clock::now(), ec);
}

std::int64_t nowUnix() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

}  // namespace

BaseCache::BaseCache(const BuildConfig& config, ExecContext exec, BuildLog& log)
    : config_(config), exec_(std::move(exec)), log_(log), dir_(config.cacheDir / "bases") {
  fs::create_directories(dir_);
}

BaseCache::Result BaseCache::resolve(const definition::BaseSpec& spec, const fs::path& scratch,
                                     const definition::MirrorSpec& mirrors) {
  Result r;
  // A base made from a tree is made here as qcow2: only a fetched disk can come packed.
  definition::DiskPacking disk{definition::BasePacking::none, ""};
  if (auto* p = std::get_if<definition::PathBase>(&spec)) {
    r = fromPath(*p);
    disk = p->disk;
  } else if (auto* u = std::get_if<definition::UrlBase>(&spec)) {
    r = fromUrl(*u);
    disk = u->disk;
  } else if (auto* d = std::get_if<definition::DebootstrapBase>(&spec)) {
    r = fromDebootstrap(*d, scratch);
  } else {
    r = fromTree(spec, scratch, mirrors);
  }
  if (const auto packing = definition::packingOf(disk.packing, r.base.source);
      packing != definition::BasePacking::none)
    r = unpacked(std::move(r), packing);
  inspect(r.base, disk.format);
  return r;
}

BaseCache::Result BaseCache::unpacked(Result packed, definition::BasePacking packing) {
  // Keyed by the packed file's verified digest: the same download is unpacked once.
  const fs::path file = dir_ / ("unpacked-" + packed.base.sha256Hex + ".img");
  for (int round = 0; round < 3; ++round) {
    {
      FileLock shared(lockOf(file), exec_.stop, FileLock::Mode::shared);
      if (fs::exists(file)) {
        touch(file);
        Result r;
        r.base = packed.base;
        r.base.file = file;
        r.base.unpacked = std::string(definition::toString(packing));
        r.lock.emplace(std::move(shared));
        return r;
      }
    }
    FileLock exclusive(lockOf(file), exec_.stop);
    if (fs::exists(file)) continue;
    fs::path partial = file;
    partial += ".partial";
    std::error_code ec;
    fs::remove(partial, ec);  // an earlier unpack that died
    log_.info("unpacking " + packed.base.source + " (" +
              std::string(definition::toString(packing)) + ")");
    const std::string what = unpackBase(exec_, packing, packed.base.file, partial);
    fs::rename(partial, file);
    log_.info("unpacked " + what + ": " + formatBytes(allocatedBytes(file)) + " of data");
  }
  throw Error("unpacked base " + file.string() + " keeps disappearing from the cache");
}

void BaseCache::inspect(ResolvedBase& base, const std::string& expectedFormat) {
  auto info = qemuImgInfo(exec_, base.file);
  if (!info.backingFile.empty())
    throw Error("base " + base.source + " has a backing file (" + info.backingFile +
                "); refusing it: a build reads only the image it was given");
  // Other files an image can make qemu-img read: a qcow2's external data file, a VMDK's extents
  // (a descriptor can name any file or device on this host).
  if (!info.dataFile.empty())
    throw Error("base " + base.source + " has an external data file (" + info.dataFile +
                "); refusing it: a build reads only the image it was given");
  for (const auto& extent : info.extents)
    if (fs::weakly_canonical(extent) != fs::weakly_canonical(base.file))
      throw Error("base " + base.source + " is a VMDK whose extent is another file (" + extent +
                  "); refusing it: a build reads only the image it was given");
  if (std::find(std::begin(definition::kDiskBaseFormats), std::end(definition::kDiskBaseFormats),
                info.format) == std::end(definition::kDiskBaseFormats))
    throw Error("base " + base.source + " is in format " + info.format +
                "; expected qcow2, raw, vmdk, vdi, vhdx or vpc (VHD)");
  if (!expectedFormat.empty() && info.format != expectedFormat)
    throw Error("base " + base.source + " is in format " + info.format +
                ", the definition says format: " + expectedFormat);
  base.format = info.format;
  base.virtualSize = info.virtualSize;
  base.allocatedSize = allocatedBytes(base.file);
}

fs::path BaseCache::beneathBaseDirs(const std::string& path, const std::string& field) const {
  const auto& dirs = config_.baseDirs;
  std::string tried;
  for (const auto& dir : dirs) {
    const fs::path root = dir.lexically_normal();
    fs::path rel = fs::path(path).lexically_normal();
    if (rel.is_absolute()) rel = rel.lexically_relative(root);
    tried += (tried.empty() ? "" : ", ") + root.string();
    if (rel.empty() || *rel.begin() == ".." || rel.is_absolute()) continue;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    // Opened beneath the directory with no symlink anywhere on the way: what the checks saw is
    // the file qemu-img and the build read.
    UniqueFd dirFd = openDirectory(root);
    UniqueFd fd(openBeneathRaw(dirFd.get(), rel.string(), O_RDONLY | O_NOFOLLOW));
    if (!fd) {
      if (errno == ENOENT) continue;
      openBeneath(dirFd.get(), rel.string(), O_RDONLY | O_NOFOLLOW, 0, root);  // throws
    }
    return root / rel;
  }
  throw Error(field + " '" + path + "' is not beneath the build agent's base_dirs (" +
              (tried.empty() ? std::string("none configured") : tried) + "); copy it there" +
              (field == "base.path" ? ", or use base: url: or debootstrap:" : ""));
}

BaseCache::Result BaseCache::fromPath(const definition::PathBase& spec) {
  Result r;
  r.base.kind = "path";
  r.base.file = beneathBaseDirs(spec.path, "base.path");
  r.base.source = r.base.file.string();
  struct stat st {};
  if (::stat(r.base.file.c_str(), &st) != 0) throwErrno("base image " + r.base.file.string());
  if (!S_ISREG(st.st_mode))
    throw Error("base image " + r.base.file.string() + " is not a regular file");

  // Hashing a multi-GB base on every build is wasteful: the digest is remembered per
  // (device, inode, size, mtime) and recomputed when any of them changes.
  const fs::path memo =
      dir_ / "path-digests" / (toHex(sha256(r.base.file.string())).substr(0, 32) + ".json");
  json key = {
      {"path", r.base.file.string()},
      {"dev", st.st_dev},
      {"ino", st.st_ino},
      {"size", st.st_size},
      {"mtime_ns", static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec}};
  std::string digest;
  try {
    auto j = json::parse(readFile(memo));
    if (j.at("key") == key) digest = j.at("sha256");
  } catch (const std::exception&) {
  }
  if (digest.empty()) {
    log_.info("hashing base " + r.base.file.string() + " (" +
              formatBytes(static_cast<std::uint64_t>(st.st_size)) + ")");
    digest = toHex(hashFile(r.base.file).sha256);
    fs::create_directories(memo.parent_path());
    writeFileAtomic(memo, json{{"key", key}, {"sha256", digest}}.dump());
  } else {
    r.base.cached = true;
  }
  if (!spec.sha256.empty() && spec.sha256 != digest)
    throw Error("base checksum mismatch: " + r.base.file.string() + " has sha256 " + digest +
                ", the definition expects " + spec.sha256);
  r.base.sha256Hex = digest;
  return r;
}

BaseCache::Result BaseCache::fromUrl(const definition::UrlBase& spec) {
  const fs::path file = dir_ / ("url-" + spec.sha256 + ".img");
  for (int round = 0; round < 3; ++round) {
    {
      FileLock shared(lockOf(file), exec_.stop, FileLock::Mode::shared);
      if (fs::exists(file)) {
        touch(file);
        Result r;
        r.base = ResolvedBase{.file = file,
                              .sha256Hex = spec.sha256,
                              .kind = "url",
                              .source = spec.url,
                              .cached = round == 0};
        r.lock.emplace(std::move(shared));
        return r;
      }
    }
    FileLock exclusive(lockOf(file), exec_.stop);
    if (fs::exists(file)) continue;  // another build fetched it meanwhile
    log_.info("downloading " + spec.url);
    DownloadOptions o;
    o.expectedSha256 = spec.sha256;
    o.timeout = config_.downloadTimeout;
    o.retries = config_.downloadRetries;
    o.stop = exec_.stop;
    o.proxy = config_.proxy;
    BuildLog* log = &log_;
    o.progress = [log](std::uint64_t done, std::uint64_t total) { log->progress(done, total); };
    o.note = [log](const std::string& m) { log->warn(m); };
    downloadFile(spec.url, file, o);
    log_.info("downloaded and verified " + formatBytes(fs::file_size(file)));
  }
  throw Error("base " + spec.url + " keeps disappearing from the cache (evicted while in use?)");
}

BaseCache::Result BaseCache::fromDebootstrap(definition::DebootstrapBase spec,
                                             const fs::path& scratch) {
  // The first stage runs as host root and reads the keyring and a file: mirror itself: they are
  // host paths the operator put beneath base_dirs, never anywhere a definition names.
  std::string keyringSha256;
  if (!spec.keyring.empty()) {
    spec.keyring = beneathBaseDirs(spec.keyring, "base.debootstrap.keyring").string();
    keyringSha256 = toHex(sha256(readFile(spec.keyring)));
  }
  if (spec.mirror.starts_with("file:"))
    spec.mirror =
        "file://" + beneathBaseDirs(spec.mirror.substr(5), "base.debootstrap.mirror").string();
  const std::string key = debootstrapRecipeKey(spec, keyringSha256);
  return made(dir_ / ("debootstrap-" + key + ".qcow2"), "debootstrap",
              "debootstrap " + spec.suite + " " + spec.mirror + " (recipe " + key + ")", scratch,
              [&](const fs::path& out, const fs::path& work) {
                makeDebootstrapBase(spec, out, work, config_, exec_, log_);
              });
}

BaseCache::Result BaseCache::fromTree(const definition::BaseSpec& spec, const fs::path& scratch,
                                      const definition::MirrorSpec& mirrors) {
  const auto* rootfs = std::get_if<definition::RootfsBase>(&spec);
  const auto* oci = std::get_if<definition::OciBase>(&spec);
  const definition::BaseFile& from = rootfs ? rootfs->file : oci->file;
  const std::string kind(definition::baseKind(spec));
  // The file is found and verified like a disk base; an OCI layout is a directory, known by its
  // index.json (its blobs are named by their digests and skopeo checks each); a registry image
  // by the digest it is pulled by.
  Result source;
  std::string identity;
  const bool registry = oci && !oci->registry.empty();
  const fs::path local =
      registry || !from.url.empty()
          ? fs::path()
          : beneathBaseDirs(from.path, rootfs ? "base.rootfs.path" : "base.oci.path");
  const bool layoutDir = oci && !local.empty() && fs::is_directory(fs::symlink_status(local));
  if (oci && oci->format == definition::OciFormat::layout && !layoutDir)
    throw Error("base " + from.name() +
                " is not a directory; format: layout is an OCI image layout directory");
  if (registry) {
    source.base.source = "docker://" + oci->registry;
    identity = from.sha256;
  } else if (layoutDir) {
    source.base.file = local;
    source.base.source = local.string();
    identity = ociLayoutIdentity(source.base.file);
  } else {
    source = from.url.empty() ? fromPath(definition::PathBase{from.path, from.sha256, {}})
                              : fromUrl(definition::UrlBase{from.url, from.sha256, {}});
    identity = source.base.sha256Hex;
  }
  const auto format = oci && !registry ? std::optional(ociFormatOf(exec_, *oci, source.base.file))
                                       : std::optional<definition::OciFormat>();
  const auto& tree = *definition::treeDiskOf(spec);
  auto packages = tree.packages;
  std::sort(packages.begin(), packages.end());
  const json recipe = {{"recipe", kTreeRecipe},
                       {"kind", kind},
                       {"identity", identity},
                       {"pinned", from.sha256},
                       {"format", format ? json(definition::toString(*format)) : json(nullptr)},
                       {"ref", oci ? oci->ref : ""},
                       {"packages", packages},
                       {"size", tree.size},
                       {"root_label", tree.rootLabel},
                       {"bootloader", tree.bootloader},
                       {"kernel_cmdline", tree.kernelCmdline}};
  const std::string key = toHex(sha256(recipe.dump())).substr(0, 32);
  const std::string described =
      kind + " " + source.base.source +
      (format ? " (" + std::string(definition::toString(*format)) + ")" : std::string()) +
      " (recipe " + key + ")";
  auto r = made(dir_ / (kind + "-" + key + ".qcow2"), kind, described, scratch,
                [&](const fs::path& out, const fs::path& work) {
                  const fs::path treeDir = work / "rootfs";
                  if (rootfs) {
                    log_.info("unpacking root tarball " + source.base.source);
                    log_.info("unpacked " + unpackRootfsTarball(exec_, source.base.file, treeDir));
                  } else {
                    const auto src = registry ? registryOciSource(*oci, mirrors, config_.proxy)
                                              : localOciSource(*format, source.base.file, oci->ref);
                    unpackOciImage(exec_, src, layoutDir ? from.sha256 : std::string(),
                                   work / "oci", treeDir, log_);
                  }
                  makeTreeBootable(treeDir, tree, described, config_, exec_, log_);
                  writeTreeDisk(treeDir, tree, out, work, config_, exec_, log_);
                });
  return r;
}

BaseCache::Result BaseCache::made(
    const fs::path& file, const std::string& kind, const std::string& source,
    const fs::path& scratch, const std::function<void(const fs::path&, const fs::path&)>& make) {
  fs::path meta = file;
  meta += ".json";
  auto fresh = [&]() -> std::optional<json> {
    try {
      if (!fs::exists(file)) return std::nullopt;
      auto j = json::parse(readFile(meta));
      auto age = nowUnix() - j.at("created_at").get<std::int64_t>();
      if (age * 1000 > config_.debootstrapMaxAge.count()) return std::nullopt;
      return j;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  for (int round = 0; round < 3; ++round) {
    {
      FileLock shared(lockOf(file), exec_.stop, FileLock::Mode::shared);
      if (auto j = fresh()) {
        touch(file);
        Result r;
        r.base = ResolvedBase{.file = file,
                              .sha256Hex = j->at("sha256"),
                              .kind = kind,
                              .source = source,
                              .cached = round == 0};
        r.lock.emplace(std::move(shared));
        return r;
      }
    }
    FileLock exclusive(lockOf(file), exec_.stop);
    if (fresh()) continue;
    log_.info(fs::exists(file) ? "the " + kind +
                                     " base is older than base_cache.debootstrap_max_age; "
                                     "rebuilding it"
                               : "no cached " + kind + " base for this recipe; making it");
    TempDir work(scratch, kind + "-");
    make(file, work.path());
    auto digest = toHex(hashFile(file).sha256);
    writeFileAtomic(
        meta, json{{"sha256", digest}, {"created_at", nowUnix()}, {"source", source}}.dump(2));
    log_.info(kind + " base ready: " + formatBytes(fs::file_size(file)) + ", sha256 " + digest);
  }
  throw Error(kind + " base " + file.string() + " keeps disappearing from the cache");
}

void BaseCache::evict() {
  struct Entry {
    fs::path file;
    fs::file_time_type used;
    std::uint64_t size;
  };
  std::vector<Entry> entries;
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    auto name = e.path().filename().string();
    bool image = (name.starts_with("url-") && name.ends_with(".img")) ||
                 (name.starts_with("unpacked-") && name.ends_with(".img")) ||
                 ((name.starts_with("debootstrap-") || name.starts_with("rootfs-") ||
                   name.starts_with("oci-")) &&
                  name.ends_with(".qcow2"));
    if (!image || !e.is_regular_file()) continue;
    auto size = allocatedBytes(e.path());
    entries.push_back({e.path(), e.last_write_time(), size});
    total += size;
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const auto& e : entries) {
    if (total <= config_.baseCacheMaxSize) break;
    auto lock = FileLock::tryLock(lockOf(e.file));
    if (!lock.locked()) continue;  // in use by a build
    fs::remove(e.file, ec);
    fs::path meta = e.file;
    meta += ".json";
    fs::remove(meta, ec);
    total -= e.size;
    log_.info("evicted base " + e.file.filename().string() + " (" + formatBytes(e.size) +
              ") from the cache");
  }
}

}  // namespace imgpipe::build
