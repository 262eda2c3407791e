#!/bin/bash
# The seed's way from a finished disk image to a live ISO, as a plain script: the baseline the
# live ISO benchmark measures imgpipe's `outputs: [iso]` against. live-boot with apt in a
# chroot of the image, mksquashfs of its root, grub-mkrescue (xorriso) for BIOS and UEFI.
#
#   shell-live-iso.sh IMAGE.qcow2 WORK_DIR OUT.iso
# Run it in a private mount namespace (the benchmark does: unshare -m).
set -euo pipefail
image=$1 work=$2 out=$3
raw=$work/disk.raw mnt=$work/mnt iso=$work/iso loop=

unbind() {
  for m in dev/pts dev proc sys; do mountpoint -q "$mnt/$m" && umount "$mnt/$m"; done
  return 0
}
cleanup() {
  unbind
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop"
  return 0
}
trap cleanup EXIT
in_root() {
  chroot "$mnt" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"
}

qemu-img convert -O raw "$image" "$raw"
start=$(sgdisk -i 1 "$raw" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
loop=$(losetup -f --show -o $((start * 512)) "$raw")
mkdir -p "$mnt"
mount "$loop" "$mnt"
mount --bind /dev "$mnt/dev" && mount --bind /dev/pts "$mnt/dev/pts"
mount -t proc proc "$mnt/proc" && mount --bind /sys "$mnt/sys"
cp -a "$mnt/etc/resolv.conf" "$work/resolv.conf.image" 2>/dev/null || :
rm -f "$mnt/etc/resolv.conf"
grep '^nameserver' /etc/resolv.conf > "$mnt/etc/resolv.conf"
cp -a "$mnt/etc/hosts" "$work/hosts.image"
cp /etc/hosts "$mnt/etc/hosts"
printf '#!/bin/sh\nexit 101\n' > "$mnt/usr/sbin/policy-rc.d"
chmod 755 "$mnt/usr/sbin/policy-rc.d"
in_root apt-get update
in_root apt-get install -y --no-install-recommends live-boot live-boot-initramfs-tools
in_root apt-get clean
rm -f "$mnt/usr/sbin/policy-rc.d" "$mnt/etc/resolv.conf"
cp -a "$work/resolv.conf.image" "$mnt/etc/resolv.conf" 2>/dev/null || :
cp -a "$work/hosts.image" "$mnt/etc/hosts"
echo '# live system: / is the overlay' > "$mnt/etc/fstab"
unbind

mkdir -p "$iso/live" "$iso/boot/grub"
kernel=$(ls "$mnt"/boot/vmlinuz-* | sort -V | tail -1)
cp "$kernel" "$iso/live/vmlinuz"
cp "$mnt/boot/initrd.img-${kernel##*/vmlinuz-}" "$iso/live/initrd.img"
mksquashfs "$mnt" "$iso/live/filesystem.squashfs" -noappend -no-progress -comp zstd -quiet
cat > "$iso/boot/grub/grub.cfg" <<'G'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
menuentry "live" {
  linux /live/vmlinuz boot=live console=tty0 console=ttyS0,115200
  initrd /live/initrd.img
}
G
grub-mkrescue -o "$out" "$iso" -- -volid BENCH_LIVE 2>/dev/null

cleanup
loop=
trap - EXIT
rm -rf "$raw" "$iso"
