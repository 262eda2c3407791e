#include "agent-build/config/build_config.h"

#include "common/error.h"

namespace imgpipe::build {
namespace {

definition::Compression compressionFrom(const std::string& s) {
  if (s == "zlib") return definition::Compression::zlib;
  if (s == "zstd") return definition::Compression::zstd;
  if (s == "none") return definition::Compression::none;
  throw Error("unknown compression '" + s + "'");
}

AttachMethod attachFrom(const std::string& s) {
  if (s == "auto") return AttachMethod::auto_;
  if (s == "loop") return AttachMethod::loop;
  if (s == "nbd") return AttachMethod::nbd;
  throw Error("unknown attach method '" + s + "'");
}

std::filesystem::path absolutePath(const YamlReader& node) {
  auto v = node.as<std::string>();
  if (v.empty() || v.front() != '/') node.fail("must be an absolute path, got '" + v + "'");
  return v;
}

}  // namespace

std::string_view toString(AttachMethod m) {
  switch (m) {
    case AttachMethod::auto_:
      return "auto";
    case AttachMethod::loop:
      return "loop";
    case AttachMethod::nbd:
      return "nbd";
  }
  return "?";
}

BuildConfig parseBuildConfig(const YamlReader& s) {
  BuildConfig c;
  if (s.isNull()) return c;
  if (!s.isMap()) s.fail("expected a mapping");
  if (auto v = s.at("work_dir"); !v.isNull()) c.workDir = absolutePath(v);
  if (auto v = s.at("cache_dir"); !v.isNull()) c.cacheDir = absolutePath(v);
  if (auto v = s.at("output_dir"); !v.isNull()) c.outputDir = absolutePath(v);
  if (auto v = s.at("base_dirs"); !v.isNull()) {
    c.baseDirs.clear();
    for (const auto& d : v.items())
      c.baseDirs.push_back(absolutePath(d));
  }
  if (auto v = s.at("sources_dir"); !v.isNull()) c.sourcesDir = absolutePath(v);
  c.keepFailedWorkDir = s.get("keep_failed_work_dir", c.keepFailedWorkDir);
  if (auto v = s.at("min_free_space"); !v.isNull()) c.minFreeSpace = v.asSize();
  if (auto v = s.at("attach"); !v.isNull()) {
    auto t = v.as<std::string>();
    if (t != "auto" && t != "loop" && t != "nbd")
      v.fail("must be auto, loop or nbd, got '" + t + "'");
    c.attach = attachFrom(t);
  }
  if (auto comp = s.at("compression"); !comp.isNull()) {
    if (auto v = comp.at("type"); !v.isNull()) {
      auto t = v.as<std::string>();
      if (t != "zlib" && t != "zstd" && t != "none")
        v.fail("must be zlib, zstd or none, got '" + t + "'");
      c.compression = compressionFrom(t);
    }
    c.parallelCompression = comp.get("parallel", c.parallelCompression);
    c.compressionCoroutines = comp.get("coroutines", c.compressionCoroutines);
    if (c.compressionCoroutines < 1 || c.compressionCoroutines > 16)
      comp.at("coroutines").fail("must be between 1 and 16 (qemu-img's limit)");
    comp.rejectUnknownKeys();
  }
  if (auto apt = s.at("apt_cache"); !apt.isNull()) {
    c.aptCache = apt.get("enabled", c.aptCache);
    if (auto v = apt.at("max_size"); !v.isNull()) c.aptCacheMaxSize = v.asSize();
    apt.rejectUnknownKeys();
  }
  if (auto base = s.at("base_cache"); !base.isNull()) {
    if (auto v = base.at("max_size"); !v.isNull()) c.baseCacheMaxSize = v.asSize();
    if (auto v = base.at("debootstrap_max_age"); !v.isNull()) c.debootstrapMaxAge = v.asDuration();
    base.rejectUnknownKeys();
  }
  if (auto r = s.at("results"); !r.isNull()) {
    c.reuseResults = r.get("reuse", c.reuseResults);
    c.keepOutputs = r.get("keep_per_image", c.keepOutputs);
    if (c.keepOutputs < 1) r.at("keep_per_image").fail("must be at least 1");
    r.rejectUnknownKeys();
  }
  if (auto d = s.at("download"); !d.isNull()) {
    if (auto v = d.at("timeout"); !v.isNull()) c.downloadTimeout = v.asDuration();
    c.downloadRetries = d.get("retries", c.downloadRetries);
    d.rejectUnknownKeys();
  }
  c.nameservers = s.at("nameservers").asStringList();
  if (auto v = s.at("command_timeout"); !v.isNull()) {
    c.commandTimeout = v.asDuration();
    if (c.commandTimeout.count() <= 0) v.fail("must be positive");
  }
  if (auto bt = s.at("boot_test"); !bt.isNull()) {
    c.qemuSystem = bt.get<std::string>("qemu", c.qemuSystem);
    if (auto v = bt.at("accel"); !v.isNull()) {
      c.bootAccel = v.as<std::string>();
      if (c.bootAccel != "tcg" && c.bootAccel != "kvm" && c.bootAccel != "auto")
        v.fail("must be tcg, kvm or auto, got '" + c.bootAccel + "'");
    }
    c.bootCpus = bt.get("cpus", c.bootCpus);
    if (c.bootCpus < 1) bt.at("cpus").fail("must be at least 1");
    bt.rejectUnknownKeys();
  }
  if (auto sb = s.at("sandbox"); !sb.isNull()) {
    if (auto v = sb.at("uid_base"); !v.isNull()) {
      c.sandboxIds.base = v.as<unsigned>();
      try {
        checkUidRange(c.sandboxIds, "build.sandbox.uid_base");
      } catch (const Error& e) {
        v.fail(e.what());
      }
    }
    c.allowNspawnBoot = sb.get("allow_nspawn_boot", c.allowNspawnBoot);
    sb.rejectUnknownKeys();
  }
  if (auto v = s.at("helper"); !v.isNull()) c.helper = absolutePath(v);
  if (auto p = s.at("proxy"); !p.isNull()) c.proxy = parseBuildProxy(p);
  s.rejectUnknownKeys();
  return c;
}

BuildConfig loadBuildConfig(const std::filesystem::path& file) {
  auto doc = YamlReader::fromFile(file);
  return parseBuildConfig(doc.has("build") ? doc.at("build") : doc);
}

nlohmann::json toJson(const BuildConfig& c) {
  return {{"work_dir", c.workDir.string()},
          {"cache_dir", c.cacheDir.string()},
          {"output_dir", c.outputDir.string()},
          {"base_dirs",
           [&] {
             std::vector<std::string> v;
             for (const auto& d : c.baseDirs)
               v.push_back(d.string());
             return v;
           }()},
          {"sources_dir", c.sourcesDir.string()},
          {"keep_failed_work_dir", c.keepFailedWorkDir},
          {"min_free_space", c.minFreeSpace},
          {"attach", toString(c.attach)},
          {"compression", toString(c.compression)},
          {"parallel_compression", c.parallelCompression},
          {"compression_coroutines", c.compressionCoroutines},
          {"apt_cache", c.aptCache},
          {"apt_cache_max_size", c.aptCacheMaxSize},
          {"base_cache_max_size", c.baseCacheMaxSize},
          {"debootstrap_max_age_ms", c.debootstrapMaxAge.count()},
          {"reuse_results", c.reuseResults},
          {"keep_outputs", c.keepOutputs},
          {"download_timeout_ms", c.downloadTimeout.count()},
          {"download_retries", c.downloadRetries},
          {"nameservers", c.nameservers},
          {"command_timeout_ms", c.commandTimeout.count()},
          {"qemu_system", c.qemuSystem},
          {"boot_accel", c.bootAccel},
          {"boot_cpus", c.bootCpus},
          {"sandbox_uid_base", c.sandboxIds.base},
          {"allow_nspawn_boot", c.allowNspawnBoot},
          {"helper", c.helper.string()},
          {"proxy", c.proxy ? nlohmann::json{{"http", c.proxy->http},
                                             {"https", c.proxy->https},
                                             {"no_proxy", c.proxy->noProxy}}
                            : nlohmann::json()}};
}

BuildConfig buildConfigFromJson(const nlohmann::json& j) {
  BuildConfig c;
  c.workDir = j.at("work_dir").get<std::string>();
  c.cacheDir = j.at("cache_dir").get<std::string>();
  c.outputDir = j.at("output_dir").get<std::string>();
  c.baseDirs.clear();
  for (const auto& d : j.at("base_dirs"))
    c.baseDirs.emplace_back(d.get<std::string>());
  c.sourcesDir = j.at("sources_dir").get<std::string>();
  c.keepFailedWorkDir = j.at("keep_failed_work_dir");
  c.minFreeSpace = j.at("min_free_space");
  c.attach = attachFrom(j.at("attach"));
  c.compression = compressionFrom(j.at("compression"));
  c.parallelCompression = j.at("parallel_compression");
  c.compressionCoroutines = j.at("compression_coroutines");
  c.aptCache = j.at("apt_cache");
  c.aptCacheMaxSize = j.at("apt_cache_max_size");
  c.baseCacheMaxSize = j.at("base_cache_max_size");
  c.debootstrapMaxAge = std::chrono::milliseconds(j.at("debootstrap_max_age_ms").get<long long>());
  c.reuseResults = j.at("reuse_results");
  c.keepOutputs = j.at("keep_outputs");
  c.downloadTimeout = std::chrono::milliseconds(j.at("download_timeout_ms").get<long long>());
  c.downloadRetries = j.at("download_retries");
  c.nameservers = j.at("nameservers").get<std::vector<std::string>>();
  c.commandTimeout = std::chrono::milliseconds(j.at("command_timeout_ms").get<long long>());
  c.qemuSystem = j.at("qemu_system");
  c.bootAccel = j.at("boot_accel");
  c.bootCpus = j.at("boot_cpus");
  c.sandboxIds.base = j.at("sandbox_uid_base");
  c.allowNspawnBoot = j.at("allow_nspawn_boot");
  c.helper = j.at("helper").get<std::string>();
  if (const auto& p = j.at("proxy"); !p.is_null())
    c.proxy = BuildProxy{p.at("http"), p.at("https"), p.at("no_proxy")};
  return c;
}

definition::Compression effectiveCompression(const definition::ImageDefinition& def,
                                             const BuildConfig& config) {
  return def.disk.compression.value_or(config.compression);
}

}  // namespace imgpipe::build
