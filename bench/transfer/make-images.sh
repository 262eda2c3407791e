#!/usr/bin/env bash
# Makes the image pair the transfer benchmark moves: two real, compacted qcow2 images of Debian
# bookworm, the second a rebuild of the first with one extra package — the way a build agent
# produces consecutive versions (same base image, apt-get in a chroot, cleanup, fstrim,
# `qemu-img convert -c`).
#
#   bench/transfer/make-images.sh [CACHE_DIR]      (default /var/cache/imgpipe-bench)
#
# Writes CACHE_DIR/v1.qcow2 and CACHE_DIR/v2.qcow2 and reuses them on later runs; the debootstrap
# base and the downloaded .debs are cached there too. Needs root, debootstrap, qemu-img, a loop
# device and Debian's mirror.
set -euo pipefail

cache=${1:-/var/cache/imgpipe-bench}
mirror=${IMGPIPE_BENCH_MIRROR:-http://deb.debian.org/debian}
# The base is what a cloud image would hold; v1 adds what a marketplace image adds; v2 is the
# next version of it: the same list plus one package.
base_pkgs=systemd-sysv,udev,linux-image-cloud-amd64,initramfs-tools,openssh-server,ifupdown,iproute2,less,vim-tiny,ca-certificates,locales,man-db,python3
v1_pkgs="curl qemu-guest-agent sudo rsync"
v2_extra="tmux"

if [ -s "$cache/v1.qcow2" ] && [ -s "$cache/v2.qcow2" ]; then
  echo "make-images: using $cache/v1.qcow2 and $cache/v2.qcow2"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "make-images: run as root" >&2; exit 1; }
mkdir -p "$cache/debs"

# Everything that mounts runs in a private mount namespace, so nothing leaks into the host's
# mount table, whatever happens to this script.
if [ -z "${IMGPIPE_IN_MOUNT_NS:-}" ]; then
  exec env IMGPIPE_IN_MOUNT_NS=1 unshare -m --propagation private "$0" "$cache"
fi

work=$(mktemp -d "$cache/work.XXXXXX")
cleanup() {
  for m in $(grep -o " $work/[^ ]*" /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -s "$cache/base.raw" ]; then
  echo "make-images: debootstrap bookworm (a few minutes)"
  debootstrap --variant=minbase --include="$base_pkgs" --cache-dir="$cache/debs" \
    bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; exit 1; }
  chroot "$work/rootfs" apt-get clean
  rm -rf "$work/rootfs/var/lib/apt/lists/"*
  truncate -s 3G "$work/base.raw"
  # Fixed UUID and hash seed: the base is an input, and a real base image does not change
  # between builds either.
  mkfs.ext4 -q -L rootfs -U 6d1d8e34-4a5e-4f4b-9a53-0c2d6a7a1b01 \
    -E hash_seed=0b7e5b4c-91c5-4a8e-b3d2-5f3b7a7c1e02 -d "$work/rootfs" "$work/base.raw"
  mv "$work/base.raw" "$cache/base.raw"
  rm -rf "$work/rootfs"
fi

build() {  # build NAME PACKAGES...
  local name=$1; shift
  local raw="$work/$name.raw" mnt="$work/mnt-$name"
  cp --sparse=always "$cache/base.raw" "$raw"
  mkdir -p "$mnt"
  mount -o loop "$raw" "$mnt"
  mount --bind /proc "$mnt/proc"
  mount --bind /sys "$mnt/sys"
  mount --bind /dev "$mnt/dev"
  mkdir -p "$mnt/var/cache/apt/archives"
  mount --bind "$cache/debs" "$mnt/var/cache/apt/archives"
  rm -f "$mnt/etc/resolv.conf"
  cp /etc/resolv.conf "$mnt/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' > "$mnt/usr/sbin/policy-rc.d"
  chmod 755 "$mnt/usr/sbin/policy-rc.d"
  echo "deb $mirror bookworm main" > "$mnt/etc/apt/sources.list"
  chroot "$mnt" env DEBIAN_FRONTEND=noninteractive apt-get -qq update
  chroot "$mnt" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y --no-install-recommends install "$@" \
    > "$work/$name-apt.log" 2>&1 || { tail -30 "$work/$name-apt.log" >&2; exit 1; }
  # The cleanup a marketplace build does before compaction.
  umount "$mnt/var/cache/apt/archives"
  rm -rf "$mnt/var/lib/apt/lists/"* "$mnt/var/log/"*.log "$mnt/var/log/apt" "$mnt/tmp/"*
  rm -f "$mnt/usr/sbin/policy-rc.d" "$mnt/etc/ssh/ssh_host_"*
  : > "$mnt/etc/machine-id"
  umount "$mnt/dev" "$mnt/sys" "$mnt/proc"
  sync -f "$mnt"
  fstrim "$mnt" || true
  umount "$mnt"
  qemu-img convert -O qcow2 -c "$raw" "$work/$name.qcow2"
  rm -f "$raw"
  mv "$work/$name.qcow2" "$cache/$name.qcow2"
  echo "make-images: $cache/$name.qcow2 $(stat -c %s "$cache/$name.qcow2") bytes"
}

# shellcheck disable=SC2086
build v1 $v1_pkgs
# shellcheck disable=SC2086
build v2 $v1_pkgs $v2_extra
