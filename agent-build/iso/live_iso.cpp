#include "agent-build/iso/live_iso.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "agent-build/mount/mount.h"
#include "agent-build/util/boot_files.h"
#include "agent-build/util/image_fs.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// The live system's root is live-boot's overlay: the disk's fstab line for / (LABEL=... ext4,
// errors=remount-ro) would make systemd-remount-fs fail on every boot. live-boot appends its
// own overlay line to what it finds here.
constexpr const char* kLiveFstab =
    "# A live system (imgpipe outputs: [iso]): / is live-boot's overlay over the medium's\n"
    "# squashfs; the disk image's root filesystem is not here.\n";

// The host's tools, each with the Debian package that has it.
void requireHostTools() {
  struct Tool {
    fs::path path;
    const char* package;
  };
  const Tool tools[] = {{"/usr/bin/mksquashfs", "squashfs-tools"},
                        {"/usr/bin/xorriso", "xorriso"},
                        {"/usr/bin/grub-mkrescue", "grub-common"},
                        {"/usr/bin/mformat", "mtools"},
                        {"/usr/lib/grub/i386-pc/cdboot.img", "grub-pc-bin"},
                        {"/usr/lib/grub/x86_64-efi/kernel.img", "grub-efi-amd64-bin"}};
  std::string missing;
  for (const auto& t : tools)
    if (!fs::exists(t.path))
      missing += (missing.empty() ? "" : ", ") + t.path.string() + " (" + t.package + ")";
  if (!missing.empty())
    throw Error("the iso output needs on this build agent: " + missing +
                "; scripts/install-deps.sh installs them");
}

struct KernelPair {
  std::string version, vmlinuz, initrd;  // paths inside the image
};

// The newest kernel that has an initramfs.
KernelPair newestKernel(const ImageFs& img) {
  for (const auto& version : kernelVersions(img))
    if (img.exists("/boot/initrd.img-" + version))
      return {version, "/boot/vmlinuz-" + version, "/boot/initrd.img-" + version};
  throw Error(
      "the image has no kernel with an initramfs in /boot (vmlinuz-* and "
      "initrd.img-*): a live ISO boots the image's own kernel");
}

void copyOut(const ImageFs& img, const std::string& from, const fs::path& to) {
  auto content = img.readFile(from);
  if (!content) throw Error("cannot read " + from + " in the image (not a regular file)");
  writeFileAtomic(to, *content);
}

// A directory of the overlay's top layer hides the mode and owner of the image's own (overlayfs
// takes a merged directory's attributes from its top-most layer): give it the image's.
void likeInImage(const ImageFs& img, const std::string& imagePath, const fs::path& dir) {
  const auto st = img.lstat(imagePath);
  if (!st || !S_ISDIR(st->st_mode)) throw Error("the image has no directory " + imagePath);
  if (::chmod(dir.c_str(), st->st_mode & 07777) != 0 ||
      ::chown(dir.c_str(), st->st_uid, st->st_gid) != 0)
    throw Error("cannot set the mode and owner of " + dir.string() + ": " + std::strerror(errno));
}

std::string grubConfig(const std::string& label, const std::string& kernelArgs) {
  // The serial console first: a cloud's console log and the tests read ttyS0.
  return "serial --unit=0 --speed=115200\n"
         "terminal_input serial console\n"
         "terminal_output serial console\n"
         "set timeout=1\n"
         "menuentry \"" +
         label +
         " (live)\" {\n"
         "  linux /live/vmlinuz boot=live " +
         kernelArgs +
         "\n"
         "  initrd /live/initrd.img\n"
         "}\n";
}

}  // namespace

const std::vector<std::string>& liveBootPackages() {
  static const std::vector<std::string> packages = {"live-boot", "live-boot-initramfs-tools"};
  return packages;
}

std::string liveVolumeId(const std::string& imageName) {
  std::string id;
  for (unsigned char c : imageName) {
    if (id.size() == 32) break;
    id += std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
  }
  return id.empty() ? "IMGPIPE_LIVE" : id;
}

LiveIso makeLiveIso(const LiveIsoOptions& o, const ExecContext& exec) {
  requireHostTools();
  const ImageFs img(o.root);
  if (!img.exists("/usr/share/initramfs-tools/scripts/live"))
    throw Error(
        "the image's initramfs cannot boot a live medium: live-boot-initramfs-tools is "
        "not installed (the live_boot step installs it)");
  const KernelPair kernel = newestKernel(img);

  fs::remove_all(o.scratch);
  fs::create_directories(o.scratch);
  const fs::path medium = o.scratch / "medium", fstabLayer = o.scratch / "fstab-layer",
                 merged = o.scratch / "root";
  fs::create_directories(medium / "live");
  fs::create_directories(medium / "boot/grub");
  fs::create_directories(fstabLayer / "etc");
  fs::create_directories(merged);
  copyOut(img, kernel.vmlinuz, medium / "live/vmlinuz");
  copyOut(img, kernel.initrd, medium / "live/initrd.img");
  writeFileAtomic(medium / "boot/grub/grub.cfg", grubConfig(o.volumeId, o.kernelArgs));
  writeFileAtomic(fstabLayer / "etc/fstab", kLiveFstab);
  likeInImage(img, "/", fstabLayer);
  likeInImage(img, "/etc", fstabLayer / "etc");

  LiveIso out;
  out.kernel = kernel.version;
  const fs::path squashfs = medium / "live/filesystem.squashfs";
  {
    // Two read-only lower layers, no upper: the image's root, with the live fstab over it.
    Mount view("overlay", merged, "overlay", MS_RDONLY,
               "lowerdir=" + fstabLayer.string() + ":" + o.root.string());
    run(exec, {"mksquashfs", merged.string(), squashfs.string(), "-noappend", "-no-progress",
               "-comp", "zstd", "-quiet"});
    view.unmount();
  }
  out.squashfsBytes = fs::file_size(squashfs);

  const fs::path partial = o.output.string() + ".partial";
  RemoveOnExit removePartial(partial);
  run(exec, {"grub-mkrescue", "-o", partial.string(), medium.string(), "--", "-volid", o.volumeId});
  fs::rename(partial, o.output);
  out.isoBytes = fs::file_size(o.output);
  fs::remove_all(o.scratch);
  return out;
}

}  // namespace imgpipe::build
