#include "agent-build/base/debootstrap_base.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "agent-build/disk/attached_disk.h"
#include "agent-build/disk/qemu_img.h"
#include "agent-build/mount/apt.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/mount.h"
#include "agent-build/steps/cleanup_rules.h"
#include "agent-build/util/file_lock.h"
#include "agent-build/util/image_fs.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

constexpr int kDebootstrapRecipe = 3;
// The layout of Ubuntu's and Debian's cloud images: p14 BIOS boot (4 MiB), p15 EFI system
// partition (100 MiB, FAT32), p1 the root filesystem to the end of the disk, where growpart can
// extend it.
constexpr std::uint64_t kBiosBootStartSector = 2048;
constexpr std::uint64_t kEspStartSector = 10240;
constexpr std::uint64_t kRootStartSector = kEspStartSector + (100ull << 20) / 512;
constexpr const char* kEspLabel = "UEFI";
// The locale cloud-init's locale module sets on Debian when the config names none: generated
// in the base and made the default, so that first boot has nothing to do (without it the module
// fails and cloud-init ends in `error`).
constexpr const char* kDefaultLocale = "en_US.UTF-8";

std::pair<std::uint64_t, std::uint64_t> partitionSectors(const ExecContext& exec,
                                                         const fs::path& disk, int n) {
  auto out = run(exec, {"sgdisk", "-i", std::to_string(n), disk.string()}, true);
  std::smatch first, last;
  static const std::regex firstRe("First sector: ([0-9]+)"), lastRe("Last sector: ([0-9]+)");
  if (!std::regex_search(out, first, firstRe) || !std::regex_search(out, last, lastRe))
    throw Error("cannot read partition " + std::to_string(n) + " of " + disk.string() +
                " from sgdisk");
  return {std::stoull(first[1]), std::stoull(last[1])};
}

void unmountBelow(const fs::path& dir) {
  // debootstrap mounts /proc and /sys in the target for its second stage and normally unmounts
  // them; mke2fs -d would otherwise copy a live /proc into the image.
  std::vector<std::string> below;
  std::ifstream in("/proc/self/mountinfo");
  const std::string prefix = fs::weakly_canonical(dir).string() + "/";
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string a, b, c, d, mp;
    f >> a >> b >> c >> d >> mp;
    if (mp.starts_with(prefix)) below.push_back(mp);
  }
  std::sort(below.begin(), below.end(),
            [](const auto& x, const auto& y) { return x.size() > y.size(); });
  for (const auto& mp : below)
    ::umount2(mp.c_str(), MNT_DETACH);
}

void configureRootfs(const definition::DebootstrapBase& spec, ImageFs& img, BuildLog& log) {
  img.writeFile("/etc/fstab",
                "# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\nLABEL=" +
                    spec.rootLabel + "\t/\text4\tdiscard,errors=remount-ro\t0\t1\n");
  img.writeFile("/etc/hostname", "localhost\n");
  img.writeFile("/etc/hosts",
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                "ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
  // Kernel messages and a login on the serial console: clouds' consoles and the boot test read it.
  img.writeFile(
      "/etc/default/grub.d/50-imgpipe.cfg",
      "GRUB_TIMEOUT=1\nGRUB_CMDLINE_LINUX_DEFAULT=\"\"\nGRUB_CMDLINE_LINUX=\"" +
          spec.kernelCmdline +
          "\"\nGRUB_TERMINAL=\"console serial\"\nGRUB_SERIAL_COMMAND=\"serial --speed=115200\"\n");
  // The network comes from cloud-init at first boot (networkd renderer on these packages).
  img.mkdirs("/etc/systemd/system/multi-user.target.wants");
  img.symlink("/lib/systemd/system/systemd-networkd.service",
              "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service");
  if (img.exists("/lib/systemd/systemd-resolved") ||
      img.exists("/usr/lib/systemd/systemd-resolved")) {
    // As on Ubuntu cloud images: a symlink that dangles until systemd-resolved runs.
    img.symlink("../run/systemd/resolve/stub-resolv.conf", "/etc/resolv.conf");
  } else {
    img.writeFile("/etc/resolv.conf", "");
  }
  img.writeFile("/etc/machine-id", "", 0444);
  img.remove("/var/lib/dbus/machine-id");
  for (const auto& name : img.list("/etc/ssh"))
    if (name.starts_with("ssh_host_")) img.remove("/etc/ssh/" + name);
  // Root has no password (cloud-init gives the default user a key); a locked "*", not a hash.
  if (auto shadow = img.readFile("/etc/shadow")) {
    std::istringstream in(*shadow);
    std::string out;
    for (std::string line; std::getline(in, line);) {
      auto c1 = line.find(':');
      auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
      if (c2 != std::string::npos && line.substr(0, c1) == "root")
        line = "root:*" + line.substr(c2);
      out += line + "\n";
    }
    img.writeFile("/etc/shadow", out, 0640, 0, img.groupId("shadow"));
  }
  log.detail("configured the root filesystem (fstab by label " + spec.rootLabel +
             ", serial console)");
}

// The UEFI loader, made the way grub-install makes it (grub-install itself refuses an ESP it
// cannot see as FAT, and the ESP cannot be mounted on these hosts): the x86_64-efi modules
// copied next to the i386-pc ones in /boot/grub, and a core image whose embedded config finds
// the root filesystem by UUID and reads the same /boot/grub/grub.cfg that update-grub writes —
// so a kernel upgrade in an instance updates both boot paths at once.
void makeEfiLoader(ChrootSession& session, const std::string& rootUuid, const fs::path& out) {
  auto& img = session.fs();
  img.mkdirs("/boot/grub/x86_64-efi");
  for (const auto& name : img.list("/usr/lib/grub/x86_64-efi"))
    if (name.ends_with(".mod") || name.ends_with(".lst"))
      img.writeFile("/boot/grub/x86_64-efi/" + name,
                    *img.readFile("/usr/lib/grub/x86_64-efi/" + name));
  img.writeFile("/tmp/imgpipe-load.cfg",
                "search.fs_uuid " + rootUuid + " root\nset prefix=($root)'/boot/grub'\n");
  session.run({"grub-mkimage", "-O", "x86_64-efi", "-d", "/usr/lib/grub/x86_64-efi", "-o",
               "/tmp/imgpipe-bootx64.efi", "-c", "/tmp/imgpipe-load.cfg", "-p", "/boot/grub",
               "part_gpt", "ext2", "search_fs_uuid"});
  std::ofstream(out, std::ios::binary) << *img.readFile("/tmp/imgpipe-bootx64.efi");
  img.remove("/tmp/imgpipe-bootx64.efi");
  img.remove("/tmp/imgpipe-load.cfg");
}

// The ESP (p15): a FAT32 filesystem written straight into the raw disk at its offset, with the
// loader at the removable-media path (\EFI\BOOT\BOOTX64.EFI) that firmware boots without any
// NVRAM entry — a cloud's instance starts with empty NVRAM. No vfat mount needed: mkfs.fat
// --offset and mtools work on the file.
void writeEsp(const fs::path& raw, const fs::path& loader, const ExecContext& exec, BuildLog& log) {
  const std::uint64_t sectors = kRootStartSector - kEspStartSector;
  // -s 1: mkfs.fat sizes clusters by the whole file, which would leave too few for FAT32.
  run(exec, {"mkfs.fat", "-F", "32", "-s", "1", "-n", kEspLabel, "--offset",
             std::to_string(kEspStartSector), raw.string(), std::to_string(sectors / 2)});
  const std::string image = raw.string() + "@@" + std::to_string(kEspStartSector * 512);
  auto mtools = [&](std::vector<std::string> argv) {
    auto o = commandOptions(exec, std::move(argv));
    o.env["MTOOLS_SKIP_CHECK"] = "1";
    run(exec, std::move(o));
  };
  mtools({"mmd", "-i", image, "::/EFI"});
  mtools({"mmd", "-i", image, "::/EFI/BOOT"});
  mtools({"mcopy", "-i", image, loader.string(), "::/EFI/BOOT/BOOTX64.EFI"});
  log.detail("EFI system partition: FAT32 " + formatBytes(sectors * 512) +
             ", grub at \\EFI\\BOOT\\BOOTX64.EFI");
}

}  // namespace

std::vector<std::string> debootstrapBootPackages(const definition::DebootstrapBase& spec) {
  std::vector<std::string> pkgs = {"systemd-sysv",
                                   "systemd-resolved",
                                   "udev",
                                   "dbus",
                                   "linux-image-amd64",
                                   "initramfs-tools",
                                   "e2fsprogs",
                                   "openssh-server",
                                   "cloud-init",
                                   "cloud-guest-utils",
                                   "sudo",
                                   "ca-certificates",
                                   "iproute2",
                                   "locales"};
  if (spec.bootloader == "grub-pc") {
    pkgs.push_back("grub-pc");
    // The x86_64-efi modules only: the EFI loader is made with grub-mkimage and copied onto the
    // ESP; grub-efi-amd64 (which conflicts with grub-pc) would try to grub-install into it.
    pkgs.push_back("grub-efi-amd64-bin");
  }
  for (const auto& p : spec.packages)
    if (std::find(pkgs.begin(), pkgs.end(), p) == pkgs.end()) pkgs.push_back(p);
  return pkgs;
}

std::string debootstrapRecipeKey(const definition::DebootstrapBase& spec) {
  auto packages = debootstrapBootPackages(spec);
  std::sort(packages.begin(), packages.end());
  nlohmann::json j = {{"recipe", kDebootstrapRecipe},
                      {"suite", spec.suite},
                      {"mirror", spec.mirror},
                      {"variant", spec.variant},
                      {"components", spec.components},
                      {"packages", packages},
                      {"keyring", spec.keyring},
                      {"size", spec.size},
                      {"root_label", spec.rootLabel},
                      {"bootloader", spec.bootloader},
                      {"kernel_cmdline", spec.kernelCmdline}};
  return toHex(sha256(j.dump())).substr(0, 32);
}

void makeDebootstrapBase(const definition::DebootstrapBase& spec, const fs::path& output,
                         const fs::path& scratch, const BuildConfig& config,
                         const ExecContext& exec, BuildLog& log) {
  fs::create_directories(scratch);
  const fs::path rootfs = scratch / "rootfs";
  const fs::path raw = scratch / "disk.raw";
  const fs::path efiLoader = scratch / "BOOTX64.EFI";
  fs::create_directories(rootfs);

  // debootstrap makes a minimal system only; the boot packages are installed with apt in the
  // sandbox afterwards. debootstrap's own dependency handling configures packages in an order
  // that breaks on python3 modules (cloud-init's), apt's does not.
  // Its first stage (--foreign) runs host tools only: it downloads, verifies and unpacks. The
  // second stage runs the target's own dpkg and maintainer scripts, so it runs in the sandbox
  // like every other command in an image, never in a chroot of the host.
  std::string components;
  for (const auto& c : spec.components)
    components += (components.empty() ? "" : ",") + c;
  std::vector<std::string> argv = {"debootstrap", "--foreign", "--components=" + components};
  if (spec.variant != "default") argv.push_back("--variant=" + spec.variant);
  if (!spec.keyring.empty()) argv.push_back("--keyring=" + spec.keyring);
  // Packages fetched for one base are kept for the next (a different recipe, a refresh).
  const fs::path debCache = config.cacheDir / "apt" / "debootstrap";
  fs::create_directories(debCache);
  argv.push_back("--cache-dir=" + debCache.string());
  argv.insert(argv.end(), {spec.suite, rootfs.string(), spec.mirror});
  log.info("debootstrap " + spec.suite + " from " + spec.mirror + " (" + spec.variant +
           "), first stage");
  {
    FileLock cacheLock(config.cacheDir / "apt" / "debootstrap.lock", exec.stop);
    try {
      auto o = commandOptions(exec, argv);
      if (config.proxy) o.env = proxyEnvironment(*config.proxy);
      run(exec, std::move(o));
    } catch (...) {
      unmountBelow(rootfs);
      throw;
    }
  }
  unmountBelow(rootfs);
  {
    // The first stage leaves /proc a symlink to the host's /proc (its second stage would replace
    // it with a directory); the sandbox mounts its own /proc there and refuses a symlink.
    ImageFs img(rootfs);
    if (auto st = img.lstat("/proc"); st && S_ISLNK(st->st_mode)) {
      img.remove("/proc");
      img.mkdirs("/proc", 0555);
    }
  }

  auto packages = debootstrapBootPackages(spec);
  packages.erase(std::remove(packages.begin(), packages.end(), "grub-pc"), packages.end());
  {
    ChrootSession session(rootfs, chrootOptionsFor(config), exec);
    log.info("debootstrap second stage (in the sandbox)");
    // container=lxc: debootstrap's self-test for nodev targets (mknod in the target) cannot pass
    // without CAP_MKNOD; lxc is the container it knows to skip that test for.
    session.run(session.commandOptions({"/debootstrap/debootstrap", "--second-stage"},
                                       {{"container", "lxc"}}));
    log.info("installing " + std::to_string(packages.size()) +
             " packages (kernel, systemd, ssh, cloud-init, ...)");
    Apt apt(session, config, log, exec.stop, {});
    apt.update();
    apt.install(packages);
    apt.finish();
    session.fs().writeFile("/etc/locale.gen", std::string(kDefaultLocale) + " UTF-8\n");
    session.run({"locale-gen"});
    session.fs().writeFile("/etc/default/locale", std::string("LANG=") + kDefaultLocale + "\n");
    session.finish();
  }
  {
    ImageFs img(rootfs);
    configureRootfs(spec, img, log);
  }

  // A GPT disk laid out like an Ubuntu cloud image, the root filesystem written straight into
  // partition 1 by mke2fs -d: no loop device and no mount needed to fill it.
  {
    std::ofstream(raw).close();
    fs::resize_file(raw, spec.size);
  }
  const bool grub = spec.bootloader == "grub-pc";
  std::vector<std::string> sgdisk = {
      "sgdisk",
      "-o",
      "-n",
      "14:" + std::to_string(kBiosBootStartSector) + ":" + std::to_string(kEspStartSector - 1),
      "-t",
      "14:EF02",
      "-c",
      "14:bios"};
  if (grub)
    sgdisk.insert(
        sgdisk.end(),
        {"-n", "15:" + std::to_string(kEspStartSector) + ":" + std::to_string(kRootStartSector - 1),
         "-t", "15:EF00", "-c", "15:efi"});
  sgdisk.insert(sgdisk.end(), {"-n", "1:" + std::to_string(kRootStartSector) + ":0", "-t", "1:8300",
                               "-c", "1:" + spec.rootLabel, raw.string()});
  run(exec, sgdisk);
  auto [first, last] = partitionSectors(exec, raw, 1);
  const std::uint64_t rootBytes = (last - first + 1) * 512;
  log.info("writing the root filesystem (" + formatBytes(rootBytes) + ", label " + spec.rootLabel +
           ")");
  run(exec,
      {"mkfs.ext4", "-q", "-F", "-L", spec.rootLabel, "-b", "4096", "-d", rootfs.string(), "-E",
       "offset=" + std::to_string(first * 512), raw.string(), std::to_string(rootBytes / 4096)});
  fs::remove_all(rootfs);

  {
    LoopDisk disk(raw, false, exec);
    auto parts = disk.partitions(exec);
    const Partition& root = findRootPartition(parts, spec.rootLabel);
    const fs::path mnt = scratch / "mnt";
    fs::create_directories(mnt);
    for (const auto& p : parts)
      for (const auto& why : p.ignored)
        log.warn(why);
    Mount rootMount(root.device.string(), mnt, root.fsType, MS_NODEV | MS_NOSUID);
    {
      ChrootSession session(mnt, chrootOptionsFor(config, disk.device(), parts), exec);
      if (spec.bootloader == "grub-pc") {
        log.info("installing grub-pc on " + disk.device().string());
        {
          Apt apt(session, config, log, exec.stop, {});
          // No install device recorded: the loop device is gone once the base is built, and a
          // grub upgrade inside an instance must not try to install to it.
          apt.preseed(
              "grub-pc grub-pc/install_devices multiselect \ngrub-pc grub-pc/install_devices_empty "
              "boolean true\n");
          apt.install({"grub-pc"});
          apt.finish();
        }
        session.run({"grub-install", "--target=i386-pc", disk.device().string()});
        makeEfiLoader(session, root.uuid, efiLoader);
        session.run({"update-grub"});
        auto cfg = session.fs().readFile("/boot/grub/grub.cfg").value_or("");
        if (cfg.find("root=UUID=" + root.uuid) == std::string::npos)
          throw Error("update-grub did not write root=UUID=" + root.uuid +
                      " into grub.cfg; the base would not boot");
      }
      session.run({"apt-get", "clean"});
      // A base is sealed like a cloud image: no apt lists, logs, keys or machine-id.
      cleanImage(session.fs(), {});
      session.finish();
    }
    // Blocks freed by the cleanup still hold data in the raw file until trimmed.
    run(exec, {"sync", "-f", mnt.string()});
    run(exec, {"fstrim", mnt.string()});
    rootMount.unmount();
    if (!disk.detach()) throw Error(disk.describe() + " did not detach");
  }

  if (grub) writeEsp(raw, efiLoader, exec, log);

  fs::path tmp = output;
  tmp += ".tmp";
  log.info("compressing the base");
  qemuImgConvert(exec, ConvertOptions{.source = raw,
                                      .sourceFormat = "raw",
                                      .target = tmp,
                                      .targetFormat = "qcow2",
                                      .compress = true,
                                      .compression = definition::Compression::zlib,
                                      .outOfOrder = true,
                                      .coroutines = config.compressionCoroutines});
  fs::rename(tmp, output);
  fs::remove(raw);
}

}  // namespace imgpipe::build
