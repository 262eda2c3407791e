#!/usr/bin/env bash
# What the transfer plane sends for the next version of a live ISO: two versions of one image
# (`outputs: [qcow2, iso]`, the second with one package more) built on the test fixture base,
# then the second ISO fetched with imgpipe-transfer (serve + fetch on loopback) into a store
# that holds the first ISO and the first qcow2: the basis must be the ISO. Prints the sizes,
# the delta and the fetch time. Needs the fixture base (`ctest -L build` makes it) and root.
# Usage: bench/transfer/iso-delta.sh [WORK_DIR]   (from the checkout root; build/ built)
set -euo pipefail
root=$(pwd)
bin=$root/build/bin
work=${1:-/tmp/imgpipe-iso-delta}
base=$(ls /var/cache/imgpipe-test/bases/debootstrap-*.qcow2 2>/dev/null | head -n1 || true)
[ -n "$base" ] || { echo "no fixture base in /var/cache/imgpipe-test/bases: run ctest -L build first" >&2; exit 1; }
sha=$(sha256sum "$base" | cut -d' ' -f1)
rm -rf "$work"; mkdir -p "$work"; cd "$work"
for v in 1 2; do
  packages=tree; [ "$v" = 2 ] && packages="tree, jq"
  cat > "d$v.yaml" <<DEF
name: iso-delta
version: '$v'
base: {path: $base, sha256: $sha}
disk: {size: 3G}
outputs: [qcow2, iso]
packages: {install: [$packages]}
files: [{path: /etc/iso-delta-version, content: '$v'}]
validation: {require_qemu_guest_agent: false}
DEF
  echo "building version $v"
  "$bin/imgpipe-agent-build" build "d$v.yaml" --work-dir "$work/work" --out "$work/out$v" \
    --cache-dir "$work/cache" --base-dir "$(dirname "$base")" > "build$v.log" 2>&1 ||
    { tail -n 20 "build$v.log"; exit 1; }
done
T=$bin/imgpipe-transfer
mkdir keys
$T keygen a --dir keys; $T keygen b --dir keys
iso1=$(ls out1/*.iso); iso2=$(ls out2/*.iso); q1=$(ls out1/*.qcow2)
$T import "$q1" --store B --name iso-delta --version 1 > /dev/null
$T import "$iso1" --store B --name iso-delta --version 1 --output iso > /dev/null
$T import "$iso1" --store A --name iso-delta --version 1 --output iso > /dev/null
out=$($T import "$iso2" --store A --name iso-delta --version 2 --output iso)
id=$(echo "$out" | awk '/^artifact/{print $2}'); digest=$(echo "$out" | awk '/^manifest/{print $2}')
$T serve --store A --listen tcp://127.0.0.1:7799 --key keys/a.key --allow keys/b.pub > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
start=$(date +%s.%N)
timeout 900 $T fetch --store B --from tcp://127.0.0.1:7799 --server-key keys/a.pub \
  --key keys/b.key --artifact "$id" --manifest-digest "$digest" > fetch.log 2>&1 ||
  { cat fetch.log; exit 1; }
end=$(date +%s.%N)
echo "iso v1 $(stat -c %s "$iso1") bytes, v2 $(stat -c %s "$iso2") bytes"
echo "fetch of v2 into a store holding v1: $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b - a}') s"
grep -h "delta" serve.log fetch.log | tail -n 4
