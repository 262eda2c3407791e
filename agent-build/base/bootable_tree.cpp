#include "agent-build/base/bootable_tree.h"

#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include "agent-build/mount/apt.h"
#include "agent-build/mount/chroot_session.h"
#include "common/error.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// The locale cloud-init's locale module sets on Debian when the config names none: generated
// in the base and made the default, so that first boot has nothing to do (without it the module
// fails and cloud-init ends in `error`).
constexpr const char* kDefaultLocale = "en_US.UTF-8";
// A package of its own since Debian 12 and Ubuntu 23.04, part of systemd before: installed where
// the tree's archive has it.
constexpr const char* kResolvedPackage = "systemd-resolved";

std::string osReleaseField(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with(key + "=")) continue;
    auto v = line.substr(key.size() + 1);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    return v;
  }
  return "";
}

// A container image is made to run under a container runtime; these make a VM worse: docker's
// apt settings drop package lists and translations, /.dockerenv tells programs they are in a
// container, and a policy-rc.d that exits 101 would keep every package installed in an
// instance from starting its service (the sandbox puts back whatever policy-rc.d it found).
void removeContainerLeftovers(ImageFs& img, BuildLog& log) {
  std::vector<std::string> removed;
  auto drop = [&](const std::string& path) {
    if (img.exists(path) && img.remove(path)) removed.push_back(path);
  };
  drop("/.dockerenv");
  drop("/usr/sbin/policy-rc.d");
  for (const auto* dir : {"/etc/apt/apt.conf.d", "/etc/dpkg/dpkg.cfg.d"})
    for (const auto& name : img.list(dir))
      if (name.starts_with("docker")) drop(std::string(dir) + "/" + name);
  if (!removed.empty()) {
    std::string list;
    for (const auto& r : removed)
      list += (list.empty() ? "" : ", ") + r;
    log.detail("removed what a container image carries and a VM must not: " + list);
  }
}

void configureTree(const definition::TreeDiskSpec& spec, ImageFs& img, BuildLog& log) {
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

}  // namespace

TreeDistro treeDistro(const ImageFs& tree, const std::string& source) {
  auto text = tree.readFile("/etc/os-release");
  if (!text) text = tree.readFile("/usr/lib/os-release");
  if (!text)
    throw Error("base " + source +
                " has no /etc/os-release: cannot tell which distribution it is, so cannot make "
                "it bootable");
  TreeDistro d;
  d.id = osReleaseField(*text, "ID");
  d.prettyName = osReleaseField(*text, "PRETTY_NAME");
  if (d.prettyName.empty()) d.prettyName = d.id;
  const auto like = " " + osReleaseField(*text, "ID_LIKE") + " ";
  d.ubuntu = d.id == "ubuntu" || like.find(" ubuntu ") != std::string::npos;
  if (d.id != "debian" && !d.ubuntu && like.find(" debian ") == std::string::npos)
    throw Error("base " + source + " is " + d.prettyName +
                "; imgpipe makes only Debian and its derivatives (apt, initramfs-tools, grub) "
                "into bootable disks — start from a cloud image of it instead (base: url:)");
  if (!tree.exists("/usr/bin/apt-get"))
    throw Error("base " + source + " (" + d.prettyName +
                ") has no /usr/bin/apt-get: the boot packages cannot be installed into it");
  return d;
}

std::vector<std::string> treeBootPackages(const definition::TreeDiskSpec& spec,
                                          const TreeDistro& distro) {
  std::vector<std::string> pkgs = {"systemd-sysv",
                                   "udev",
                                   "dbus",
                                   distro.ubuntu ? "linux-image-virtual" : "linux-image-amd64",
                                   "initramfs-tools",
                                   "e2fsprogs",
                                   "openssh-server",
                                   "cloud-init",
                                   "cloud-guest-utils",
                                   "sudo",
                                   "ca-certificates",
                                   "iproute2",
                                   "locales",
                                   kResolvedPackage};
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

void makeTreeBootable(const fs::path& rootfs, const definition::TreeDiskSpec& spec,
                      const std::string& source, const BuildConfig& config, const ExecContext& exec,
                      BuildLog& log) {
  TreeDistro distro;
  {
    ImageFs img(rootfs);
    distro = treeDistro(img, source);
    removeContainerLeftovers(img, log);
  }
  auto packages = treeBootPackages(spec, distro);
  // grub-pc goes onto the disk, where its postinst can see the disk it boots (tree_disk.cpp).
  packages.erase(std::remove(packages.begin(), packages.end(), "grub-pc"), packages.end());
  {
    ChrootSession session(rootfs, chrootOptionsFor(config), exec);
    log.info("installing " + std::to_string(packages.size()) + " packages into " +
             distro.prettyName + " (kernel, systemd, ssh, cloud-init, ...)");
    Apt apt(session, config, log, exec.stop, {});
    apt.update();
    try {
      session.run({"apt-cache", "show", "--no-all-versions", kResolvedPackage}, true);
    } catch (const CommandError&) {
      packages.erase(std::remove(packages.begin(), packages.end(), kResolvedPackage),
                     packages.end());
      log.detail(std::string(kResolvedPackage) + " is not a package of its own here (systemd's)");
    }
    apt.install(packages);
    apt.finish();
    session.fs().writeFile("/etc/locale.gen", std::string(kDefaultLocale) + " UTF-8\n");
    // Ubuntu's locale-gen takes the locale; Debian's reads /etc/locale.gen.
    if (distro.ubuntu)
      session.run({"locale-gen", kDefaultLocale});
    else
      session.run({"locale-gen"});
    session.fs().writeFile("/etc/default/locale", std::string("LANG=") + kDefaultLocale + "\n");
    session.finish();
  }
  ImageFs img(rootfs);
  configureTree(spec, img, log);
}

int removeDeviceNodes(const fs::path& rootfs) {
  int removed = 0;
  std::error_code ec;
  // Not following symlinks: a link to a host directory is only a name in the tree.
  for (auto it = fs::recursive_directory_iterator(rootfs, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const auto st = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_block_file(st) || fs::is_character_file(st)) {
      fs::remove(it->path());
      ++removed;
    }
  }
  if (ec) throw Error("walking " + rootfs.string() + ": " + ec.message());
  return removed;
}

}  // namespace imgpipe::build
