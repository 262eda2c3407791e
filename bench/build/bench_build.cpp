// build/bench/build: one run of imgpipe's build against the plain shell recipe of the operators'
// notes (bench/build/shell-recipe.sh), on the same base and the same definition:
//   build_s            imgpipe, apt cache empty (everything downloaded from the mirror)
//   script_build_s     the shell recipe (downloads everything too)
//   cached_rebuild_s   imgpipe again, same definition and base: the earlier result is reused
//   warm_rebuild_s     imgpipe with a changed definition (one more file): a full build, but the
//                      agent's apt cache is warm
//   zstd_build_s       like warm_rebuild_s with zstd compression (QEMU >= 5.1 readers only)
//   serial_build_s     like warm_rebuild_s with build.compression.parallel: false (no -W:
//                      byte-reproducible compaction, one core)
//   boot_test_s        the acceptance boot of build_s's image, BIOS (power-on to the last
//                      in-guest check; boot_test_uefi_s the same under UEFI, boot_test_accel
//                      says tcg or kvm: `build.boot_test.accel: auto` picks KVM where it works)
// and the output sizes. Targets: build <= 1.0x, cached rebuild <= 0.5x, size <= 0.9x of the
// shell recipe's. Needs root, Debian's mirror, and makes the test fixture base on first use.
//
//   build/bench/build [--json FILE] [--packages "docker.io qemu-guest-agent curl"]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/build/bench_support.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"

using namespace imgpipe;
using namespace imgpipe::bench;
using nlohmann::json;

namespace {

std::string definition(const std::string& base, const std::string& sha,
                       const std::vector<std::string>& packages, const std::string& extra) {
  std::string pk;
  for (const auto& p : packages)
    pk += (pk.empty() ? "" : ", ") + p;
  return "name: bench-image\nbase:\n  path: " + base + "\n  sha256: " + sha + R"(
disk: {size: 4G)" +
         (extra.find("zstd") != std::string::npos ? ", compression: zstd" : "") + R"(}
mirrors:
  apt:
    sources:
      - name: debian
        uris: [http://deb.debian.org/debian]
        suites: [bookworm, bookworm-updates]
        components: [main]
        signed_by: /usr/share/keyrings/debian-archive-keyring.gpg
  docker: {registry_mirrors: ["https://docker.mirror.example"]}
packages:
  install: [)" +
         pk + R"(]
cloud_init:
  default_user:
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video, docker]
validation: {require_qemu_guest_agent: false}
)" +
         (extra.find("file") != std::string::npos
              ? "files: [{path: /etc/bench-extra, content: \"" + extra + "\"}]\n"
              : "");
}

struct ImgpipeRun {
  double seconds = 0;
  std::uint64_t bytes = 0;
  json manifest;
};

ImgpipeRun imgpipeBuild(const fs::path& area, const std::string& name, const std::string& def,
                        const std::string& config = "config.yaml") {
  auto defFile = area / (name + ".yaml");
  writeFileAtomic(defFile, def);
  auto out = area / ("out-" + name);
  ImgpipeRun r;
  std::string stdoutText;
  r.seconds = timed([&] {
    stdoutText = run({agent().string(), "build", defFile.string(), "--work-dir",
                      (area / "work").string(), "--out", out.string(), "--cache-dir",
                      (area / "cache").string(), "--config", (area / config).string(),
                      // the fixture base lives in the shared test cache, not in base_dirs
                      "--base-dir", (kSharedCache / "bases").string(), "--json"},
                     false);
  });
  r.manifest = json::parse(stdoutText);
  r.bytes = r.manifest["image"]["size"];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"imgpipe build vs the operators' shell recipe"};
  std::string jsonFile, packageList = "docker.io qemu-guest-agent curl";
  app.add_option("--json", jsonFile, "write the figures as a flat JSON object");
  app.add_option("--packages", packageList, "packages both builds install");
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> packages;
  for (std::istringstream in(packageList); !in.eof();) {
    std::string p;
    in >> p;
    if (!p.empty()) packages.push_back(p);
  }

  try {
    const auto [baseFile, baseSha] = fixtureBase();

    TempDir area("/var/tmp", "imgpipe-bench-");
    fs::create_directories(area.path() / "work");
    fs::create_directories(area.path() / "cache");
    // The bases are shared with the tests; the apt cache and the results start empty.
    fs::create_symlink(kSharedCache / "bases", area.path() / "cache" / "bases");
    writeFileAtomic(area.path() / "config.yaml",
                    "build:\n  base_cache: {debootstrap_max_age: 720h}\n  min_free_space: 1G\n");

    std::fprintf(stderr, "imgpipe build (empty apt cache)\n");
    auto cold = imgpipeBuild(area.path(), "cold", definition(baseFile, baseSha, packages, ""));
    std::fprintf(stderr, "acceptance boot of that image (BIOS, then UEFI)\n");
    const fs::path coldImage =
        area.path() / "out-cold" / cold.manifest["image"]["file"].get<std::string>();
    auto bootJson = json::parse(run(
        {agent().string(), "boot-test", coldImage.string(), (area.path() / "cold.yaml").string(),
         "--firmware", "both", "--work-dir", area.path().string(), "--json"},
        false));
    double bootBios = 0, bootUefi = 0;
    for (const auto& b : bootJson["boots"])
      (b["firmware"] == "uefi" ? bootUefi : bootBios) = b["seconds"].get<double>();
    if (!bootJson["passed"].get<bool>())
      std::fprintf(stderr, "  the acceptance boot FAILED: %s\n", bootJson.dump().c_str());
    std::fprintf(stderr, "imgpipe build again, same definition (cached rebuild)\n");
    auto cached = imgpipeBuild(area.path(), "cached", definition(baseFile, baseSha, packages, ""));
    std::fprintf(stderr, "imgpipe build, changed definition (warm apt cache)\n");
    auto warm = imgpipeBuild(area.path(), "warm", definition(baseFile, baseSha, packages, "file"));
    std::fprintf(stderr, "imgpipe build, changed definition, zstd\n");
    auto zstd =
        imgpipeBuild(area.path(), "zstd", definition(baseFile, baseSha, packages, "file zstd"));

    writeFileAtomic(area.path() / "serial-config.yaml",
                    "build:\n  base_cache: {debootstrap_max_age: 720h}\n  min_free_space: 1G\n  "
                    "compression: {parallel: false}\n");
    std::fprintf(stderr, "imgpipe build, changed definition, serial compression (no -W)\n");
    auto serial =
        imgpipeBuild(area.path(), "serial", definition(baseFile, baseSha, packages, "file serial"),
                     "serial-config.yaml");

    std::fprintf(stderr, "shell recipe\n");
    fs::create_directories(area.path() / "script-work");
    const fs::path scriptOut = area.path() / "script.qcow2";
    std::vector<std::string> argvScript = {"unshare",
                                           "--mount",
                                           "--propagation",
                                           "private",
                                           (source() / "bench/build/shell-recipe.sh").string(),
                                           baseFile,
                                           (area.path() / "script-work").string(),
                                           scriptOut.string(),
                                           "4G"};
    argvScript.insert(argvScript.end(), packages.begin(), packages.end());
    double scriptSeconds = timed([&] { run(argvScript); });
    const std::uint64_t scriptBytes = fs::file_size(scriptOut);

    auto stepSeconds = [](const json& m, const std::string& step) {
      for (const auto& s : m["steps"])
        if (s["step"] == step) return s["duration_ms"].get<double>() / 1000.0;
      return 0.0;
    };
    json figures = {
        {"build_s", cold.seconds},
        {"script_build_s", scriptSeconds},
        {"cached_rebuild_s", cached.seconds},
        {"warm_rebuild_s", warm.seconds},
        {"zstd_build_s", zstd.seconds},
        {"output_bytes", cold.bytes},
        {"script_output_bytes", scriptBytes},
        {"zstd_output_bytes", zstd.bytes},
        {"serial_build_s", serial.seconds},
        {"serial_output_bytes", serial.bytes},
        {"build_ratio", cold.seconds / scriptSeconds},
        {"cached_rebuild_ratio", cached.seconds / scriptSeconds},
        {"size_ratio", static_cast<double>(cold.bytes) / static_cast<double>(scriptBytes)},
        {"build_packages_s", stepSeconds(cold.manifest, "packages")},
        {"build_compact_s", stepSeconds(cold.manifest, "compact")},
        {"build_validate_s", stepSeconds(cold.manifest, "validate")},
        {"warm_packages_s", stepSeconds(warm.manifest, "packages")},
        {"boot_test_s", bootBios},
        {"boot_test_uefi_s", bootUefi},
        {"boot_test_accel", bootJson["accel"]},
        {"boot_test_passed", bootJson["passed"]},
        {"packages", packageList}};

    std::printf(
        "\nimgpipe build vs the operators' shell recipe (same base, same definition: %s)\n\n",
        packageList.c_str());
    std::printf("  %-34s %10s %14s %8s\n", "", "time", "output", "ratio");
    std::printf("  %-34s %9.1fs %14s %8s\n", "shell recipe (loop, zlib)", scriptSeconds,
                std::to_string(scriptBytes).c_str(), "1.00");
    std::printf("  %-34s %9.1fs %14s %7.2fx  (target <= 1.0x time, <= 0.9x size: %.2fx)\n",
                "imgpipe build (empty apt cache)", cold.seconds, std::to_string(cold.bytes).c_str(),
                cold.seconds / scriptSeconds,
                static_cast<double>(cold.bytes) / static_cast<double>(scriptBytes));
    std::printf("  %-34s %9.1fs %14s %7.2fx  (target <= 0.5x)\n", "imgpipe cached rebuild (reused)",
                cached.seconds, std::to_string(cached.bytes).c_str(),
                cached.seconds / scriptSeconds);
    std::printf("  %-34s %9.1fs %14s %7.2fx\n", "imgpipe changed def, warm apt", warm.seconds,
                std::to_string(warm.bytes).c_str(), warm.seconds / scriptSeconds);
    std::printf("  %-34s %9.1fs %14s %7.2fx\n", "imgpipe changed def, warm apt, zstd", zstd.seconds,
                std::to_string(zstd.bytes).c_str(), zstd.seconds / scriptSeconds);
    std::printf("  %-34s %9.1fs %14s %7.2fx\n", "imgpipe changed def, warm, no -W", serial.seconds,
                std::to_string(serial.bytes).c_str(), serial.seconds / scriptSeconds);
    std::printf("\n  imgpipe build steps: packages %.1fs, compact %.1fs, validate %.1fs\n",
                figures["build_packages_s"].get<double>(), figures["build_compact_s"].get<double>(),
                figures["build_validate_s"].get<double>());
    std::printf("  acceptance boot (%s): BIOS %.1fs, UEFI %.1fs (target under TCG <= 90 s)%s\n",
                bootJson["accel"].get<std::string>().c_str(), bootBios, bootUefi,
                bootJson["passed"].get<bool>() ? "" : "  FAILED");
    if (!jsonFile.empty()) writeFileAtomic(jsonFile, figures.dump(2) + "\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-build: %s\n", e.what());
    return 1;
  }
}
