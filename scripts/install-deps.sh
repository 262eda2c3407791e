#!/usr/bin/env bash
# Installs everything imgpipe needs on Debian 12, from Debian's packages only.
#   scripts/install-deps.sh            build + run-time dependencies (all roles)
#   scripts/install-deps.sh --test     also what the tests start: Glance, Keystone, qemu-system,
#                                       rsync/sshd for the transfer benchmark, ansible, clang,
#                                       tinyproxy, squid, docker-registry
set -euo pipefail

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (it installs Debian packages)" >&2
  exit 1
fi

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  capnproto libcapnp-dev libatomic1
  libzmq3-dev cppzmq-dev libsodium-dev
  librsync-dev liblzma-dev zlib1g-dev libssl-dev libcurl4-openssl-dev
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev
  prometheus-cpp-dev
  libgtest-dev libgmock-dev
)
# What the agents drive at run time: one list, shared with the .deb's Depends.
mapfile -t runtime_pkgs < <(sed -e 's/#.*//' "$(dirname "$0")/../deploy/runtime-packages.txt" | tr -s ' \t' '\n' | grep -v '^$')
[ "${#runtime_pkgs[@]}" -gt 0 ] || { echo "install-deps: no package names in deploy/runtime-packages.txt" >&2; exit 1; }
test_pkgs=(
  clang libclang-rt-14-dev
  glance-api keystone uwsgi-core uwsgi-plugin-python3 python3-openstackclient sqlite3
  rsync openssh-server openssh-client ethtool iperf3 iptables nftables
  # delay and loss on test links through NFQUEUE (tests/support/link_delay.cpp)
  libnetfilter-queue-dev
  ansible-core
  curl procps psmisc
  # a real HTTP proxy for the builds behind one (network: proxy, build.proxy)
  tinyproxy-bin
  # a real OCI registry the oci: base pulls from through a mirror (tests/build/tree_bases_test.cpp)
  docker-registry
  # a real caching proxy a whole build agent sits behind (tests/build/proxy_test.cpp)
  squid
)

pkgs=("${build_pkgs[@]}" "${runtime_pkgs[@]}")
[ "$want_test" = 1 ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
# Packages such as glance-api try to start their own service from postinst; imgpipe's tests run
# their own instances, so keep package scripts from starting any (policy-rc.d, exit 101).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
