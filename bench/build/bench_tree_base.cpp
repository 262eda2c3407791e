// build/bench/tree-base: a base made from a container image, imgpipe's `base: oci:` against the
// shell way (bench/build/shell-oci-base.sh: skopeo + umoci, the boot set with apt in a chroot,
// the same GPT disk with grub for BIOS and UEFI, qemu-img convert -c), from the same OCI layout
// of a minbase debootstrap (no kernel, no init, as Docker's debian image), both with an empty apt
// cache:
//   oci_base_s          imgpipe-agent-build prepare-base (unpack, boot set, disk, compress)
//   script_oci_base_s   the shell way
//   oci_base_ratio      imgpipe / shell
// and both outputs' sizes. Needs root and Debian's mirror; makes the minbase tree on first use
// (kept in /var/cache/imgpipe-test, as the tests keep it).
//
//   build/bench/tree-base [--json FILE]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/build/bench_support.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

using namespace imgpipe;
using namespace imgpipe::bench;
using nlohmann::json;

namespace {

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

void sh(const std::string& script) {
  run({"bash", "-o", "pipefail", "-c", script});
}

// The tests' minbase tree (tests/build/tree_bases_test.cpp makes the same file).
fs::path minbaseTarball() {
  const fs::path tarball = kSharedCache / "minbase-bookworm-tree.tar";
  if (fs::exists(tarball)) return tarball;
  const fs::path dir = kSharedCache / "minbase-bookworm-tree.partial";
  fs::remove_all(dir);
  fs::create_directories(kSharedCache / "debootstrap-tree-debs");
  sh("debootstrap --variant=minbase --cache-dir=" + q(kSharedCache / "debootstrap-tree-debs") +
     " bookworm " + q(dir) + " http://deb.debian.org/debian >/dev/null");
  sh("tar -C " + q(dir) + " --numeric-owner -cf " + q(tarball.string() + ".tmp") + " .");
  fs::rename(tarball.string() + ".tmp", tarball);
  fs::remove_all(dir);
  return tarball;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"imgpipe's oci: base vs skopeo + umoci + the shell recipe"};
  std::string jsonFile;
  app.add_option("--json", jsonFile, "write the figures as a flat JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    TempDir area("/var/tmp", "imgpipe-bench-tree-");
    const fs::path layout = area.path() / "bases" / "debian-oci";
    const fs::path bundle = area.path() / "bundle";
    std::fprintf(stderr, "an OCI layout of a minbase debootstrap (one layer)\n");
    fs::create_directories(layout.parent_path());
    sh("umoci init --layout " + q(layout) + " && umoci new --image " + q(layout) + ":bookworm" +
       " && umoci unpack --image " + q(layout) + ":bookworm " + q(bundle) + " >/dev/null" +
       " && tar -C " + q(bundle / "rootfs") + " --numeric-owner -xpf " + q(minbaseTarball()) +
       " && umoci repack --image " + q(layout) + ":bookworm " + q(bundle));
    fs::remove_all(bundle);

    // Both start with an empty apt cache: every package comes from the mirror.
    fs::create_directories(area.path() / "work");
    writeFileAtomic(area.path() / "oci.yaml", "name: bench-oci\nbase:\n  oci:\n    path: " +
                                                  layout.string() + "\n    ref: bookworm\n");
    writeFileAtomic(area.path() / "config.yaml", "build:\n  min_free_space: 1G\n");
    std::fprintf(stderr, "imgpipe: base: oci: (prepare-base)\n");
    std::string out;
    const double imgpipeSeconds = timed([&] {
      out =
          run({agent().string(), "prepare-base", (area.path() / "oci.yaml").string(), "--work-dir",
               (area.path() / "work").string(), "--cache-dir", (area.path() / "cache").string(),
               "--config", (area.path() / "config.yaml").string(), "--base-dir",
               layout.parent_path().string(), "--json"},
              false);
    });
    const auto made = json::parse(out.substr(out.find('{')));
    const std::uint64_t imgpipeBytes = fs::file_size(made["base"].get<std::string>());

    std::fprintf(stderr, "the shell way (skopeo + umoci + chroot apt + disk + grub)\n");
    fs::create_directories(area.path() / "script-work");
    const fs::path scriptOut = area.path() / "script.qcow2";
    const double scriptSeconds = timed([&] {
      run({"unshare", "--mount", "--propagation", "private",
           (source() / "bench/build/shell-oci-base.sh").string(), layout.string() + ":bookworm",
           (area.path() / "script-work").string(), scriptOut.string(), "3G"},
          false);
    });
    const std::uint64_t scriptBytes = fs::file_size(scriptOut);

    const json figures = {{"oci_base_s", imgpipeSeconds},
                          {"script_oci_base_s", scriptSeconds},
                          {"oci_base_ratio", imgpipeSeconds / scriptSeconds},
                          {"oci_base_bytes", imgpipeBytes},
                          {"script_oci_base_bytes", scriptBytes}};
    std::printf("\nbase: oci: vs the shell way (same OCI layout of a minbase bookworm)\n\n");
    std::printf("  %-40s %10s %14s %8s\n", "", "time", "output", "ratio");
    std::printf("  %-40s %9.1fs %14s %8s\n", "skopeo + umoci + chroot apt + disk", scriptSeconds,
                std::to_string(scriptBytes).c_str(), "1.00");
    std::printf("  %-40s %9.1fs %14s %7.2fx\n", "imgpipe base: oci: (sandboxed, sealed)",
                imgpipeSeconds, std::to_string(imgpipeBytes).c_str(),
                imgpipeSeconds / scriptSeconds);
    if (!jsonFile.empty()) writeFileAtomic(jsonFile, figures.dump(2) + "\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-tree-base: %s\n", e.what());
    return 1;
  }
}
