#include "agent-build/boot/acceptance_boot.h"

#include <chrono>
#include <optional>
#include <random>
#include <thread>

#include "agent-build/boot/guest_agent.h"
#include "agent-build/boot/image_facts.h"
#include "agent-build/boot/nocloud_seed.h"
#include "agent-build/boot/qemu_vm.h"
#include "agent-build/disk/read_only_image.h"
#include "agent-build/sandbox/network_namespace.h"
#include "agent-build/sandbox/slirp_gate.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kConsoleTailLines = 30;
constexpr const char* kContainerResultsDir = "/var/lib/imgpipe-acceptance";

std::string randomHex(int digits) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::string out;
  for (int i = 0; i < digits; ++i)
    out += "0123456789abcdef"[rng() & 15];
  return out;
}

std::string readOrEmpty(const fs::path& p) {
  try {
    return readFile(p);
  } catch (const Error&) {
    return {};
  }
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Polls the results channel until the guest says done, the boot process ends, the timeout
// passes or the build is stopped. `exited` returns the process's exit code once it is gone.
void awaitResults(BootRun& run, const fs::path& results, Clock::time_point start,
                  std::chrono::milliseconds timeout, const ExecContext& exec,
                  const std::function<std::optional<int>()>& exited,
                  const std::function<std::string()>& exitOutput) {
  GuestResults got;
  for (;;) {
    if (exec.stop.stop_requested()) throw Error("acceptance boot: stopped");
    got = parseGuestResults(readOrEmpty(results));
    if (got.done) break;
    if (auto code = exited()) {
      run.error = "the " + run.method + " process exited (code " + std::to_string(*code) +
                  ") before the checks in the guest finished" +
                  (got.started ? "" : " (they never started)") + consoleTail(exitOutput(), 10);
      break;
    }
    if (Clock::now() - start > timeout) {
      run.error = std::string(got.started ? "the checks in the guest started but did not finish"
                                          : "no results from the guest: the checks never started "
                                            "(cloud-init did not run the seed's user-data?)") +
                  " within " + formatDuration(timeout);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  run.seconds = since(start);
  run.checks = got.checks;
}

void finish(BootRun& run, const fs::path& console, const fs::path& keepAs) {
  const std::string text = readOrEmpty(console);
  run.consoleTail = consoleTail(text, kConsoleTailLines);
  writeFileAtomic(keepAs, text);
  run.consoleLog = keepAs;
}

enum class Medium { disk, iso };

BootRun bootQemu(const fs::path& image, Medium medium, const AcceptanceOptions& opt,
                 Firmware firmware, const fs::path& scratch, const ExecContext& exec,
                 const std::function<void(const std::string&)>& info) {
  BootRun run;
  run.method = "qemu";
  run.medium = medium == Medium::iso ? "iso" : "disk";
  run.firmware = std::string(toString(firmware));
  run.accel = resolveAccel(opt.qemu, opt.accel, opt.probeKernel, exec);
  TempDir dir(scratch, "boot-" + run.medium + "-" + run.firmware + "-");

  GuestExpectations expect = opt.expect;
  expect.hostname = "imgpipe-" + randomHex(8);
  if (medium == Medium::iso)
    expect.skip["root filesystem grown"] =
        "a live system's root is a RAM overlay over the ISO's squashfs: no disk to grow";
  if (!opt.guestAgent) run.skipped["guest agent ping"] = "qemu-guest-agent is not installed";
  if (opt.network != definition::Network::host)
    expect.skip["dns resolves"] = "network: " + std::string(definition::toString(opt.network)) +
                                  ": the guest reaches nothing, a resolver neither (restrict=on)";
  run.skipped.insert(expect.skip.begin(), expect.skip.end());
  auto seed = makeSeed("iid-" + expect.hostname, expect.hostname,
                       guestConfigJson(expect, {{"results_port", kResultsPort}}));
  writeSeedImage(seed, dir.path() / "seed.img", exec);

  // The guest's network leads where the definition's does, and never to the build host: QEMU
  // runs in a network namespace of the boot's own, where user networking's 10.0.2.2 is that
  // namespace's empty loopback. host: slirp4netns is its way out (sandbox/slirp_gate.h); none
  // and proxy: there is none, and restrict=on keeps every connection in the VM.
  std::optional<SlirpGate> slirp;
  std::optional<NetworkNamespace> isolated;
  if (opt.network == definition::Network::host)
    slirp.emplace(dir.path() / "netns", dir.path() / "slirp4netns.log");
  else
    isolated.emplace(dir.path() / "netns");

  const std::uint64_t diskSize = opt.spec.diskSize.value_or(2 * opt.expect.imageVirtualSize);
  std::optional<Overlay> overlay;
  if (medium == Medium::disk) overlay.emplace(image, dir.path() / "disk.qcow2", diskSize, exec);
  VmOptions vm{.qemu = opt.qemu,
               .accel = run.accel,
               .firmware = firmware,
               .memory = opt.spec.memory,
               .cpus = opt.cpus,
               .disk = overlay ? overlay->file() : fs::path(),
               .cdrom = medium == Medium::iso ? image : fs::path(),
               .seed = dir.path() / "seed.img",
               .dir = dir.path(),
               .netns = slirp ? slirp->netnsFile() : isolated->file(),
               .restrictNetwork = !slirp};
  info("booting " + image.filename().string() + " (" + run.where() + ", " + run.accel + ", " +
       formatBytes(vm.memory) + ", " +
       (overlay ? formatBytes(diskSize) + " disk" : std::string("live, no disk")) + ", hostname " +
       expect.hostname + ")");
  const auto start = Clock::now();
  QemuVm qemu(vm, exec);
  awaitResults(
      run, qemu.results(), start, opt.spec.timeout, exec, [&] { return qemu.exited(); },
      [&] { return qemu.exitTail(); });
  if (run.error.empty() && opt.guestAgent) {
    auto ping = guestPing(qemu.guestAgentSocket(), std::chrono::seconds(30));
    run.checks.push_back({"guest agent ping", ping.ok, ping.detail});
  }
  qemu.stop();
  finish(run, qemu.console(),
         scratch / (std::string("console-") + (medium == Medium::iso ? "iso-" : "") + run.firmware +
                    ".log"));
  return run;
}

BootRun bootNspawn(const fs::path& image, const AcceptanceOptions& opt, const fs::path& scratch,
                   const ExecContext& exec, const std::function<void(const std::string&)>& info) {
  BootRun run;
  run.method = "nspawn";
  TempDir dir(scratch, "boot-nspawn-");
  GuestExpectations expect = opt.expect;
  expect.hostname = "imgpipe-" + randomHex(8);
  // What a container cannot show, and why (docs/build-agent.md).
  const std::map<std::string, std::string> notInContainer = {
      {"root filesystem grown", "a container boots a directory: there is no disk to grow"},
      {"guest agent ping", "no virtio-serial channel in a container"},
      {"dns resolves", "a container has only loopback (--private-network): no resolver to ask"}};
  for (const auto& [check, why] : notInContainer) {
    expect.skip[check] = why;
    run.skipped[check] = why;
  }
  // Units that cannot work in a container whatever the image: not counted as failed, and not
  // checked as services (the notes: docker has no privileges for its daemon under nspawn).
  const std::map<std::string, std::string> containerUnits = {
      {"systemd-remount-fs.service", "the container's root is an overlay, not the image's fs"},
      {"qemu-guest-agent.service",
       "started by its virtio-serial port, which a container does not have"},
      {"docker.socket", "gives up with docker.service, which cannot run in a container"},
      {"docker.service", "dockerd lacks the privileges it needs in a container"},
      {"containerd.service", "containerd lacks the privileges it needs in a container"}};
  for (const auto& [unit, why] : containerUnits) {
    expect.ignoreFailedUnits.push_back(unit);
    for (const auto& s : expect.services)
      if (s == unit || s + ".service" == unit) {
        expect.skip["service " + s + " active"] = why;
        run.skipped["service " + s + " active"] = why;
      }
  }
  for (const auto& c : expect.checks)
    if (!c.nspawn) {
      expect.skip["check " + c.name] = "marked nspawn: false in the definition";
      run.skipped["check " + c.name] = "marked nspawn: false in the definition";
    }
  run.skipped.insert(expect.skip.begin(), expect.skip.end());
  const fs::path results = dir.path() / "results";
  fs::create_directories(results);
  writeFileAtomic(results / "results.jsonl", "");
  // The container's root is an unprivileged host user (--private-users): it may write here only.
  fs::permissions(results, fs::perms::all);
  fs::permissions(results / "results.jsonl", fs::perms::owner_read | fs::perms::owner_write |
                                                 fs::perms::group_read | fs::perms::group_write |
                                                 fs::perms::others_read | fs::perms::others_write);
  auto seed = makeSeed("iid-" + expect.hostname, expect.hostname,
                       guestConfigJson(expect, {{"results_file", std::string(kContainerResultsDir) +
                                                                     "/results.jsonl"}}));
  writeSeedDir(seed, dir.path() / "seed");

  ReadOnlyImage root(image, dir.path() / "image", opt.rootLabel, exec);
  const fs::path console = dir.path() / "console.log";
  const std::string machine = expect.hostname;
  std::vector<std::string> argv = {
      "/bin/sh", "-c", "exec \"$0\" \"$@\" >" + shellQuote(console.string()) + " 2>&1 </dev/null",
      "systemd-nspawn",
      // PID 1 of the host need not be systemd: no machined registration, no scope unit.
      "--register=no", "--keep-unit", "--quiet", "--boot", "--console=pipe",
      "--directory=" + root.root().string(),
      // Writes go to a tmpfs over the read-only root: the image is not touched.
      "--volatile=overlay", "--machine=" + machine,
      // Only loopback. The container's root is the host's root with nspawn's default
      // capabilities, filter and read-only /proc/sys: that is why an agent refuses method: nspawn
      // unless its operator allows it (--private-users=pick stopped the image's boot here).
      "--private-network",
      "--bind-ro=" + (dir.path() / "seed").string() + ":/var/lib/cloud/seed/nocloud",
      "--bind=" + results.string() + ":" + kContainerResultsDir};
  auto o = commandOptions(exec, argv);
  o.timeout = std::chrono::milliseconds(0);
  o.killGrace = std::chrono::seconds(20);  // SIGTERM makes nspawn shut the container down
  o.onLine = nullptr;
  info("booting the root filesystem of " + image.filename().string() +
       " with systemd-nspawn (hostname " + expect.hostname + ")");
  const auto start = Clock::now();
  {
    Subprocess nspawn(std::move(o));
    awaitResults(
        run, results / "results.jsonl", start, opt.spec.timeout, exec,
        [&] { return nspawn.poll(); }, [&] { return readOrEmpty(console); });
    nspawn.terminate();
  }
  finish(run, console, scratch / "console-nspawn.log");
  return run;
}

}  // namespace

AcceptanceOptions acceptanceOptions(const definition::ImageDefinition& def, const ImageFacts& facts,
                                    const BuildConfig& config) {
  AcceptanceOptions o;
  o.spec = def.validation.bootTest;
  o.expect = guestExpectations(def, facts);
  o.hasEsp = facts.hasEsp;
  o.guestAgent = facts.guestAgent;
  o.probeKernel = facts.kernel;
  o.rootLabel = def.disk.rootLabel;
  o.qemu = config.qemuSystem;
  o.accel = config.bootAccel;
  o.cpus = config.bootCpus;
  o.allowNspawn = config.allowNspawnBoot;
  o.network = def.network;
  return o;
}

std::vector<Firmware> firmwaresFor(definition::BootFirmware f, bool hasEsp) {
  switch (f) {
    case definition::BootFirmware::bios:
      return {Firmware::bios};
    case definition::BootFirmware::uefi:
      return {Firmware::uefi};
    case definition::BootFirmware::both:
      return {Firmware::bios, Firmware::uefi};
    case definition::BootFirmware::auto_:
      break;
  }
  if (hasEsp) return {Firmware::bios, Firmware::uefi};
  return {Firmware::bios};
}

std::vector<BootRun> runAcceptanceBoot(const fs::path& image, const AcceptanceOptions& options,
                                       const fs::path& scratch, const ExecContext& exec,
                                       const std::function<void(const std::string&)>& info) {
  fs::create_directories(scratch);
  std::vector<BootRun> runs;
  if (options.spec.method == definition::BootMethod::nspawn) {
    if (!options.allowNspawn)
      throw Error(
          "validation.boot_test.method: nspawn starts the image's own units in a container on "
          "this build host, and this agent does not allow it (build.sandbox.allow_nspawn_boot: "
          "false); method: qemu boots the image in a VM instead");
    runs.push_back(bootNspawn(image, options, scratch, exec, info));
    return runs;
  }
  for (auto fw : firmwaresFor(options.spec.firmware, options.hasEsp))
    runs.push_back(bootQemu(image, Medium::disk, options, fw, scratch, exec, info));
  return runs;
}

std::vector<BootRun> runLiveAcceptanceBoot(const fs::path& iso, const AcceptanceOptions& options,
                                           const fs::path& scratch, const ExecContext& exec,
                                           const std::function<void(const std::string&)>& info) {
  fs::create_directories(scratch);
  std::vector<BootRun> runs;
  // grub-mkrescue always writes both loaders: auto boots both.
  for (auto fw : firmwaresFor(options.spec.firmware, /*hasEsp=*/true))
    runs.push_back(bootQemu(iso, Medium::iso, options, fw, scratch, exec, info));
  return runs;
}

}  // namespace imgpipe::build
