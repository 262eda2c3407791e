#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent-build/config/build_proxy.h"
#include "agent-build/sandbox/user_namespace.h"
#include "common/yaml_reader.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

enum class AttachMethod { auto_, loop, nbd };
std::string_view toString(AttachMethod m);

// The `build:` section of the build agent's config (deploy/config/agent-build.yaml documents
// every key). Value type: copied into each build's job spec.
struct BuildConfig {
  // Per-build work directories (a sparse raw copy of the disk lives here while building).
  std::filesystem::path workDir = "/var/lib/imgpipe/build/work";
  // Bases (by digest), the shared apt package cache, the result index.
  std::filesystem::path cacheDir = "/var/cache/imgpipe/build";
  // Finished images, manifests and build logs, one directory per image name and version.
  std::filesystem::path outputDir = "/var/lib/imgpipe/build/outputs";
  // The only places a `base: path:` may name (relative paths resolve against the first): a
  // definition never names an arbitrary file on this host.
  std::vector<std::filesystem::path> baseDirs{"/var/lib/imgpipe/bases"};
  // Where `source:` files a definition did not bring with it are looked up (beneath it only);
  // empty: every such file must come in the definition's bundle.
  std::filesystem::path sourcesDir;
  bool keepFailedWorkDir = false;
  // A build refuses to start when the work dir has less free space than the base's allocated
  // size plus this margin.
  std::uint64_t minFreeSpace = 2ull << 30;

  AttachMethod attach = AttachMethod::auto_;

  definition::Compression compression =
      definition::Compression::zlib;   // for definitions that do not choose
  bool parallelCompression = true;     // qemu-img convert -W
  unsigned compressionCoroutines = 8;  // qemu-img convert -m

  bool aptCache = true;
  std::uint64_t aptCacheMaxSize = 10ull << 30;

  std::uint64_t baseCacheMaxSize = 20ull << 30;
  std::chrono::milliseconds debootstrapMaxAge{7ll * 24 * 3600 * 1000};

  bool reuseResults = true;
  unsigned keepOutputs = 3;  // finished versions kept per image name

  std::chrono::milliseconds downloadTimeout{2ll * 3600 * 1000};
  unsigned downloadRetries = 5;

  std::vector<std::string>
      nameservers;  // for the image while it is built; empty: the host's resolvers
  std::chrono::milliseconds commandTimeout{2ll * 3600 * 1000};
  // How everything the build fetches leaves the host, where only a proxy leads out.
  std::optional<BuildProxy> proxy;

  std::string qemuSystem = "qemu-system-x86_64";
  // auto: KVM where a guest really runs with it (probed once), else TCG.
  std::string bootAccel = "auto";  // tcg | kvm | auto
  // Under TCG each vCPU is a host thread (multi-threaded TCG): two halve the boot's CPU-bound
  // stretches on a two-core host (146.5 s -> 93.7 s for the quickstart's BIOS boot here).
  unsigned bootCpus = std::clamp(std::thread::hardware_concurrency(), 1u, 2u);

  // The host ids a definition's code runs as, in every sandbox (sandbox/user_namespace.h).
  UidRange sandboxIds;
  // validation.boot_test.method: nspawn boots the image's own units in a container on this host;
  // refused unless the operator allows it here (docs/build-agent.md, "The acceptance boot").
  bool allowNspawnBoot = false;

  // The program run as the build child (`<helper> run-build`). The agent binary itself unless a
  // test embeds the runner in another executable.
  std::filesystem::path helper = "/proc/self/exe";
};

// Reads the section (a null reader gives the defaults) and rejects unknown keys.
BuildConfig parseBuildConfig(const YamlReader& section);
// The build: section of an agent config file, or the whole file when it is only that section.
BuildConfig loadBuildConfig(const std::filesystem::path& file);

nlohmann::json toJson(const BuildConfig& c);
BuildConfig buildConfigFromJson(const nlohmann::json& j);

// The effective compression of a definition on this agent.
definition::Compression effectiveCompression(const definition::ImageDefinition& def,
                                             const BuildConfig& config);

}  // namespace imgpipe::build
