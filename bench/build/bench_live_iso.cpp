// build/bench/live-iso: a live ISO of a built image, imgpipe's `outputs: [iso]` against the
// seed's way in shell (bench/build/shell-live-iso.sh: live-boot with apt in a chroot of the
// image, mksquashfs, grub-mkrescue), in the same run, on the same definition (the fixture base
// + jq), each with an empty apt cache for live-boot:
//   live_iso_s          imgpipe's live_boot + live_iso steps (from the build's manifest)
//   script_live_iso_s   the shell way, from the same definition's qcow2 built without iso
//   live_iso_ratio      imgpipe / shell
// and both ISOs' sizes. Needs root and Debian's mirror; makes the test fixture base on first use.
//
//   build/bench/live-iso [--json FILE]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/build/bench_support.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

using namespace imgpipe;
using namespace imgpipe::bench;
using nlohmann::json;

namespace {

std::string definition(const std::string& base, const std::string& sha, bool iso) {
  return "name: bench-live\nbase:\n  path: " + base + "\n  sha256: " + sha +
         "\ndisk: {size: 4G, compression: zstd}\npackages: {install: [jq]}\n" +
         "validation: {require_qemu_guest_agent: false, boot_test: {enabled: false}}\n" +
         (iso ? "outputs: [qcow2, iso]\n" : "");
}

json build(const fs::path& area, const std::string& name, const std::string& def) {
  const fs::path defFile = area / (name + ".yaml");
  writeFileAtomic(defFile, def);
  const std::string out = run(
      {agent().string(), "build", defFile.string(), "--work-dir", (area / "work").string(), "--out",
       (area / ("out-" + name)).string(), "--cache-dir", (area / "cache").string(), "--config",
       (area / "config.yaml").string(), "--base-dir", (kSharedCache / "bases").string(), "--json"},
      false);
  return json::parse(out);
}

double stepSeconds(const json& manifest, const std::string& step) {
  for (const auto& s : manifest["steps"])
    if (s["step"] == step) return s["duration_ms"].get<double>() / 1000.0;
  throw Error("the build manifest has no step " + step);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"imgpipe's outputs: [iso] vs live-boot + mksquashfs + grub-mkrescue in shell"};
  std::string jsonFile;
  app.add_option("--json", jsonFile, "write the figures as a flat JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    TempDir area("/var/tmp", "imgpipe-bench-live-");
    const auto [baseFile, baseSha] = fixtureBase();
    fs::create_directories(area.path() / "cache");
    fs::create_symlink(kSharedCache / "bases", area.path() / "cache" / "bases");
    writeFileAtomic(area.path() / "config.yaml",
                    "build:\n  base_cache: {debootstrap_max_age: 720h}\n  min_free_space: 1G\n");

    std::fprintf(stderr, "imgpipe: the image without an iso (the shell way's input)\n");
    const json plain = build(area.path(), "plain", definition(baseFile, baseSha, false));
    const fs::path plainImage =
        area.path() / "out-plain" / plain["image"]["file"].get<std::string>();

    std::fprintf(stderr, "the shell way (chroot apt live-boot + mksquashfs + grub-mkrescue)\n");
    fs::create_directories(area.path() / "script-work");
    const fs::path scriptIso = area.path() / "script.iso";
    const double scriptSeconds = timed([&] {
      run({"unshare", "--mount", "--propagation", "private",
           (source() / "bench/build/shell-live-iso.sh").string(), plainImage.string(),
           (area.path() / "script-work").string(), scriptIso.string()},
          false);
    });
    const std::uint64_t scriptBytes = fs::file_size(scriptIso);

    std::fprintf(stderr, "imgpipe: the same definition with outputs: [qcow2, iso]\n");
    const json live = build(area.path(), "live", definition(baseFile, baseSha, true));
    const double liveBoot = stepSeconds(live, "live_boot"), liveIso = stepSeconds(live, "live_iso");
    const double imgpipeSeconds = liveBoot + liveIso;
    std::uint64_t imgpipeBytes = 0;
    for (const auto& o : live["outputs"])
      if (o["kind"] == "iso") imgpipeBytes = o["size"];

    const json figures = {{"live_iso_s", imgpipeSeconds},
                          {"live_boot_step_s", liveBoot},
                          {"live_iso_step_s", liveIso},
                          {"script_live_iso_s", scriptSeconds},
                          {"live_iso_ratio", imgpipeSeconds / scriptSeconds},
                          {"live_iso_bytes", imgpipeBytes},
                          {"script_live_iso_bytes", scriptBytes}};
    std::printf("\noutputs: [iso] vs the shell way (same definition, fixture base + jq)\n\n");
    std::printf("  %-46s %10s %14s %8s\n", "", "time", "iso", "ratio");
    std::printf("  %-46s %9.1fs %14s %8s\n", "chroot apt live-boot + mksquashfs + mkrescue",
                scriptSeconds, std::to_string(scriptBytes).c_str(), "1.00");
    std::printf("  %-46s %9.1fs %14s %7.2fx\n", "imgpipe live_boot + live_iso (read-only image)",
                imgpipeSeconds, std::to_string(imgpipeBytes).c_str(),
                imgpipeSeconds / scriptSeconds);
    if (!jsonFile.empty()) writeFileAtomic(jsonFile, figures.dump(2) + "\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-live-iso: %s\n", e.what());
    return 1;
  }
}
