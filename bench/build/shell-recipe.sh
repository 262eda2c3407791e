#!/bin/bash
# The operators' recipe (seeds 000/001 and the notes), as a plain shell script: the baseline the
# build benchmark measures imgpipe against. No nbd on these machines, so the disk is attached as
# in the notes' method (c): a raw copy on a loop device with partx partitions. It installs the
# same packages and writes the same mirror and cloud-init files as the benchmark's definition,
# cleans up as seed 000 does (apt-get clean, machine-id, resolv.conf) and compacts with
# `qemu-img convert -O qcow2 -c`.
#
#   shell-recipe.sh BASE.qcow2 WORK_DIR OUT.qcow2 SIZE PACKAGE...
# Run it in a private mount namespace (the benchmark does: unshare -m).
set -euo pipefail
base=$1 work=$2 out=$3 size=$4
shift 4
packages=("$@")
raw=$work/disk.raw
mnt=$work/mnt
loop=

cleanup() {
  for m in dev/pts dev proc sys ""; do mountpoint -q "$mnt/$m" && umount "$mnt/$m"; done
  [ -n "$loop" ] && losetup -d "$loop"
  return 0
}
trap cleanup EXIT

qemu-img convert -O raw "$base" "$raw"
qemu-img resize -f raw "$raw" "$size"
loop=$(losetup -P -f --show "$raw")
partx -a "$loop" 2>/dev/null || true            # no partition parsers in this kernel
sgdisk -e "$loop"                                # backup GPT header to the new end
growpart "$loop" 1 || true                       # exits 1 on NOCHANGE
e2fsck -f -y "${loop}p1" || [ $? -le 2 ]
resize2fs "${loop}p1"

mkdir -p "$mnt"
mount "${loop}p1" "$mnt"
mount --bind /dev "$mnt/dev"
mount --bind /dev/pts "$mnt/dev/pts"
mount -t proc proc "$mnt/proc"
mount --bind /sys "$mnt/sys"
rm -f "$mnt/etc/resolv.conf"                     # a dangling symlink in cloud images
grep '^nameserver' /etc/resolv.conf > "$mnt/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$mnt/usr/sbin/policy-rc.d"   # no services started in the chroot
chmod 755 "$mnt/usr/sbin/policy-rc.d"

# Mirrors and cloud-init, as in the definition.
cat > "$mnt/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
rm -f "$mnt/etc/apt/sources.list"
mkdir -p "$mnt/etc/docker"
printf '{\n  "registry-mirrors": ["https://docker.mirror.example"]\n}\n' > "$mnt/etc/docker/daemon.json"
cat > "$mnt/etc/cloud/cloud.cfg.d/99-docker.cfg" <<'CLOUD'
system_info:
  default_user:
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video, docker]
CLOUD

chroot "$mnt" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update
chroot "$mnt" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"

# Cleanup as in seed 000.
chroot "$mnt" apt-get clean
truncate -s 0 "$mnt/etc/machine-id"
rm -f "$mnt/var/lib/dbus/machine-id"
rm -f "$mnt/usr/sbin/policy-rc.d"
rm -f "$mnt/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$mnt/etc/resolv.conf"

cleanup
loop=
trap - EXIT
qemu-img convert -O qcow2 -c "$raw" "$out"
rm -f "$raw"
