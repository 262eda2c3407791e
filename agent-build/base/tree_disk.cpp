#include "agent-build/base/tree_disk.h"

#include <sys/stat.h>

#include <fstream>
#include <regex>
#include <set>

#include "agent-build/disk/attached_disk.h"
#include "agent-build/disk/qemu_img.h"
#include "agent-build/mount/apt.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/mount/mount.h"
#include "agent-build/steps/cleanup_rules.h"
#include "agent-build/util/image_fs.h"
#include "common/error.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// The layout of Ubuntu's and Debian's cloud images: p14 BIOS boot (4 MiB), p15 EFI system
// partition (100 MiB, FAT32), p1 the root filesystem to the end of the disk, where growpart can
// extend it.
constexpr std::uint64_t kBiosBootStartSector = 2048;
constexpr std::uint64_t kEspStartSector = 10240;
constexpr std::uint64_t kRootStartSector = kEspStartSector + (100ull << 20) / 512;
constexpr const char* kEspLabel = "UEFI";

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

// The bytes the files of a tree take (hard links once).
std::uint64_t treeBytes(const fs::path& root) {
  std::uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (st.st_nlink > 1 && !seen.insert({st.st_dev, st.st_ino}).second) continue;
    total += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  if (ec) throw Error("walking " + root.string() + ": " + ec.message());
  return total;
}

}  // namespace

void writeTreeDisk(const fs::path& rootfs, const definition::TreeDiskSpec& spec,
                   const fs::path& output, const fs::path& scratch, const BuildConfig& config,
                   const ExecContext& exec, BuildLog& log) {
  const fs::path raw = scratch / "disk.raw";
  const fs::path efiLoader = scratch / "BOOTX64.EFI";
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
  // mke2fs -d on a filesystem too small fails with "Could not allocate block"; say what is wrong.
  // Metadata and the grub and initramfs still to come need room besides the files.
  if (const auto tree = treeBytes(rootfs); tree + tree / 4 > rootBytes)
    throw Error("the base's root tree holds " + formatBytes(tree) + ", too much for a " +
                formatBytes(spec.size) + " disk with room to boot; raise the base's size:");
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
