#!/bin/bash
# Racker's way from a container image to a VM disk, as a plain script: the baseline the tree
# base benchmark measures imgpipe's `base: oci:` against. skopeo + umoci for the layers, the boot
# set with apt in a chroot of the tree, then the disk imgpipe writes: GPT with BIOS boot, ESP and
# an ext4 root filled by mke2fs -d, grub-pc on a loop device, the x86_64-efi loader with
# grub-mkimage onto the ESP (mtools: no vfat mount on these hosts), `qemu-img convert -c`.
#
#   shell-oci-base.sh LAYOUT:TAG WORK_DIR OUT.qcow2 SIZE
# Run it in a private mount namespace (the benchmark does: unshare -m).
set -euo pipefail
src=$1 work=$2 out=$3 size=$4
bundle=$work/bundle rootfs=$work/bundle/rootfs raw=$work/disk.raw mnt=$work/mnt loop=
boot_set=(systemd-sysv systemd-resolved udev dbus linux-image-amd64 initramfs-tools e2fsprogs
  openssh-server cloud-init cloud-guest-utils sudo ca-certificates iproute2 locales
  grub-efi-amd64-bin)

unbind() {
  for m in dev/pts dev proc sys; do mountpoint -q "$1/$m" && umount "$1/$m"; done
  return 0
}
bind() {
  mount --bind /dev "$1/dev" && mount --bind /dev/pts "$1/dev/pts"
  mount -t proc proc "$1/proc" && mount --bind /sys "$1/sys"
}
cleanup() {
  unbind "$rootfs"
  unbind "$mnt"
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop"
  return 0
}
trap cleanup EXIT
# The host's resolver and names inside a root: a mirror may be known only from the host's
# /etc/hosts, and systemd-resolved's postinst points resolv.conf at a stub that is not running.
use_host_names() {
  rm -f "$1/etc/resolv.conf"
  grep '^nameserver' /etc/resolv.conf > "$1/etc/resolv.conf"
  cp /etc/hosts "$1/etc/hosts"
}
in_root() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"
}

skopeo --insecure-policy copy --quiet "oci:$src" "oci:$work/layout:base"
umoci unpack --image "$work/layout:base" "$bundle" >/dev/null

bind "$rootfs"
cp -a "$rootfs/etc/hosts" "$work/hosts.image" 2>/dev/null || : > "$work/hosts.image"
use_host_names "$rootfs"
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
in_root "$rootfs" apt-get update
in_root "$rootfs" apt-get install -y --no-install-recommends "${boot_set[@]}"
echo 'en_US.UTF-8 UTF-8' > "$rootfs/etc/locale.gen"
in_root "$rootfs" locale-gen
echo 'LANG=en_US.UTF-8' > "$rootfs/etc/default/locale"
printf 'LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0\t1\n' > "$rootfs/etc/fstab"
mkdir -p "$rootfs/etc/default/grub.d"
printf 'GRUB_TIMEOUT=1\nGRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"\nGRUB_TERMINAL="console serial"\n' \
  > "$rootfs/etc/default/grub.d/50-cloud.cfg"
truncate -s 0 "$rootfs/etc/machine-id"
rm -f "$rootfs"/etc/ssh/ssh_host_*
unbind "$rootfs"

truncate -s "$size" "$raw"
sgdisk -o -n 14:2048:10239 -t 14:EF02 -n 15:10240:215039 -t 15:EF00 -n 1:215040:0 -t 1:8300 "$raw" >/dev/null
loop=$(losetup -P -f --show "$raw")
partx -a "$loop" 2>/dev/null || true
mkfs.fat -F 32 -n UEFI "${loop}p15" >/dev/null
mkfs.ext4 -q -L cloudimg-rootfs -d "$rootfs" "${loop}p1"
rm -rf "$bundle"
mkdir -p "$mnt"
mount "${loop}p1" "$mnt"
bind "$mnt"
use_host_names "$mnt"
echo 'grub-pc grub-pc/install_devices_empty boolean true' | in_root "$mnt" debconf-set-selections
in_root "$mnt" apt-get install -y --no-install-recommends grub-pc
in_root "$mnt" grub-install --target=i386-pc "$loop"
uuid=$(blkid -s UUID -o value "${loop}p1")
printf 'search.fs_uuid %s root\nset prefix=($root)/boot/grub\n' "$uuid" > "$mnt/tmp/load.cfg"
cp -r "$mnt/usr/lib/grub/x86_64-efi" "$mnt/boot/grub/"
in_root "$mnt" grub-mkimage -O x86_64-efi -d /usr/lib/grub/x86_64-efi -o /tmp/bootx64.efi \
  -c /tmp/load.cfg -p /boot/grub part_gpt ext2 search_fs_uuid
MTOOLS_SKIP_CHECK=1 mmd -i "${loop}p15" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "${loop}p15" "$mnt/tmp/bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
in_root "$mnt" update-grub
in_root "$mnt" apt-get clean
cp "$work/hosts.image" "$mnt/etc/hosts"
rm -f "$mnt/usr/sbin/policy-rc.d" "$mnt/tmp/load.cfg" "$mnt/tmp/bootx64.efi"
rm -f "$mnt/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$mnt/etc/resolv.conf"

cleanup
loop=
trap - EXIT
qemu-img convert -O qcow2 -c "$raw" "$out"
rm -f "$raw"
