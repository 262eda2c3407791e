#!/usr/bin/env bash
# The whole imgpipe pipeline on one machine, in the shape it has across sites:
#
#   (internet: Debian's mirror)
#        |  NAT
#   [iq-build]  build agent ---40 Mbit/s---> [iq-relay] relay agent ---40 Mbit/s---> [iq-ctrl] glance agent
#      198.18.0.2 / 198.18.1.1               198.18.1.2 / 198.18.2.1                 198.18.2.2  + Glance (127.0.0.1)
#
# The coordinator and the imgpipe CLI run on the host (198.18.0.1); every agent runs in its own
# network namespace and reaches it over the links. The example definition
# (deploy/examples/debian-12-docker.yaml) is built from Debian's mirror, relayed, and registered
# in a real Glance (Debian's glance-api). State is kept in $IMGPIPE_QUICKSTART_DIR, so a second
# run builds the next version (one package more) and delivers it as a delta.
#
#   scripts/quickstart.sh            set up everything and run the pipeline
#   scripts/quickstart.sh --clean    remove the quickstart's state and exit
#   QUICKSTART_RATE=100mbit scripts/quickstart.sh   other link speed
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${IMGPIPE_QUICKSTART_DIR:-/var/lib/imgpipe-quickstart}
RATE=${QUICKSTART_RATE:-40mbit}
BIN=$ROOT/build/bin
NS_BUILD=iq-build NS_RELAY=iq-relay NS_CTRL=iq-ctrl
GLANCE_PORT=9292
PROJECT=5f1e6a1c0b0d4e4c9b1f2a3d4c5b6a7e # owner of the images (Glance fakeauth identity)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "quickstart: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, makes namespaces, mounts images)"

if [ "${1:-}" = "--clean" ]; then
  for ns in $NS_BUILD $NS_RELAY $NS_CTRL; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
  echo "removed $WORK"
  exit 0
fi

say "Installing dependencies (Debian packages) and building imgpipe"
scripts/install-deps.sh --test
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGPIPE_UNITY_BUILD=ON >/dev/null
# Only what the pipeline runs: the tests and benchmarks are targets of their own (scripts/test.sh
# builds them), and compiling them first would double a newcomer's wait.
cmake --build build -j"$(nproc)" --target imgpipe imgpipe-coordinator imgpipe-agent-build \
  imgpipe-agent-relay imgpipe-agent-glance

mkdir -p "$WORK"/{keys,logs}
RUN=$(( $(cat "$WORK/runs" 2>/dev/null || echo 0) + 1 ))
echo "$RUN" > "$WORK/runs"

# ---------------------------------------------------------------------------------------------
# Cleanup on every exit: daemons stopped, namespaces and the NAT rule removed. State stays.
PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
  done
  ip netns exec $NS_CTRL tests/support/openstack-local.sh stop "$WORK/openstack" --keep >/dev/null 2>&1
  nft delete table ip imgpipe_quickstart 2>/dev/null
  for ns in $NS_BUILD $NS_RELAY $NS_CTRL; do ip netns del "$ns" 2>/dev/null; done
  ip link del iq-host 2>/dev/null
  # The host is a router only while the quickstart runs.
  [ -n "$FORWARD_BEFORE" ] && sysctl -qw net.ipv4.ip_forward="$FORWARD_BEFORE"
}
FORWARD_BEFORE=""
trap cleanup EXIT

start() {  # start NAMESPACE LOG CMD... : a daemon, in its own session, logging to LOG
  local ns=$1 log=$2
  shift 2
  if [ "$ns" = host ]; then setsid "$@" >>"$log" 2>&1 &
  else setsid ip netns exec "$ns" "$@" >>"$log" 2>&1 &
  fi
  PIDS+=($!)
}

# ---------------------------------------------------------------------------------------------
say "Network: three namespaces, links shaped to $RATE (tbf), NAT to Debian's mirror"
cleanup 2>/dev/null; PIDS=()
for ns in $NS_BUILD $NS_RELAY $NS_CTRL; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
done
link() {  # link DEV_A NS_A ADDR_A DEV_B NS_B ADDR_B SHAPE
  ip link add "$1" type veth peer name "$4"
  [ "$2" = host ] || ip link set "$1" netns "$2"
  ip link set "$4" netns "$5"
  local a=(ip); [ "$2" = host ] || a=(ip -n "$2")
  "${a[@]}" addr add "$3/24" dev "$1"; "${a[@]}" link set "$1" up
  ip -n "$5" addr add "$6/24" dev "$4"; ip -n "$5" link set "$4" up
  if [ "$7" = shaped ]; then
    # tbf must see wire-size packets: no segmentation offloads on either end.
    # burst: 10 ms worth of bytes at the link rate (at least a few packets).
    local n=${RATE%%[a-z]*} unit=${RATE#"${RATE%%[a-z]*}"} bps
    case $unit in kbit) bps=$((n * 1000)) ;; mbit) bps=$((n * 1000000)) ;; gbit) bps=$((n * 1000000000)) ;;
      *) die "QUICKSTART_RATE: use NNkbit, NNmbit or NNgbit" ;; esac
    local burst=$((bps / 8 / 100))
    for end in "$2:$1" "$5:$4"; do
      local n=${end%%:*} d=${end#*:}
      ip netns exec "$n" ethtool -K "$d" tso off gso off gro off >/dev/null 2>&1 || true
      ip netns exec "$n" tc qdisc replace dev "$d" root tbf rate "$RATE" burst "$((burst > 3000 ? burst : 3000))" latency 50ms
    done
  fi
}
link iq-host host 198.18.0.1 iq-b0 $NS_BUILD 198.18.0.2 unshaped
link iq-b1 $NS_BUILD 198.18.1.1 iq-r0 $NS_RELAY 198.18.1.2 shaped
link iq-r1 $NS_RELAY 198.18.2.1 iq-c0 $NS_CTRL 198.18.2.2 shaped
ip -n $NS_BUILD route add default via 198.18.0.1
ip -n $NS_BUILD route add 198.18.2.0/24 via 198.18.1.2
ip -n $NS_RELAY route add default via 198.18.1.1
ip -n $NS_CTRL route add default via 198.18.2.1
ip route replace 198.18.1.0/24 via 198.18.0.2
ip route replace 198.18.2.0/24 via 198.18.0.2
FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
sysctl -qw net.ipv4.ip_forward=1
nft add table ip imgpipe_quickstart
nft add chain ip imgpipe_quickstart post '{ type nat hook postrouting priority 100 ; }'
nft add rule ip imgpipe_quickstart post ip saddr 198.18.0.0/16 ip daddr != 198.18.0.0/16 masquerade

# ---------------------------------------------------------------------------------------------
say "Keys and configs in $WORK"
for k in coordinator build-1 relay-1 ctrl-a operator; do
  [ -f "$WORK/keys/$k.key" ] || "$BIN/imgpipe" keygen "$k" --dir "$WORK/keys" >/dev/null
done
pub() { sed -n 's/^public: "\(.*\)"$/\1/p' "$WORK/keys/$1.pub"; }
cat > "$WORK/authorized_keys" <<EOF
build-1  build    $(pub build-1)
relay-1  relay    $(pub relay-1)
ctrl-a   glance   $(pub ctrl-a)
operator operator $(pub operator)
EOF
cat > "$WORK/coordinator.yaml" <<EOF
listen: tcp://198.18.0.1:7700
key: keys/coordinator.key
authorized_keys: authorized_keys
state_dir: coordinator
metrics_listen: 127.0.0.1:9477
topology:
  sites: [{name: site-a, controller: ctrl-a}]
  links:
    - {from: build, to: relay-1}
    - {from: relay-1, to: ctrl-a}
  default_targets: [site-a]
EOF
common() {  # common NAME
  cat <<EOF
name: $1
key: $WORK/keys/$1.key
coordinator: {endpoint: "tcp://198.18.0.1:7700", public_key: $WORK/keys/coordinator.pub}
state_dir: $WORK/$1
EOF
}
{ common build-1; cat <<EOF
build:
  work_dir: $WORK/build-1/work
  cache_dir: $WORK/build-1/cache
  output_dir: $WORK/build-1/outputs
transfer: {listen: "tcp://198.18.1.1:7701", advertise: "tcp://198.18.1.1:7701"}
EOF
} > "$WORK/agent-build.yaml"
{ common relay-1; echo 'transfer: {listen: "tcp://198.18.2.1:7701", advertise: "tcp://198.18.2.1:7701"}'; } \
  > "$WORK/agent-relay.yaml"
{ common ctrl-a; cat <<EOF
glance:
  auth: trusted-headers
  allow_insecure_http: true          # the quickstart's Glance is on loopback
  endpoint: http://127.0.0.1:$GLANCE_PORT
  trusted_headers: {project_id: $PROJECT, roles: [admin, member, reader]}
EOF
} > "$WORK/agent-glance.yaml"
cat > "$WORK/imgpipe.yaml" <<EOF
coordinator: {endpoint: "tcp://198.18.0.1:7700", public_key: keys/coordinator.pub}
key: keys/operator.key
EOF
export IMGPIPE_CONFIG=$WORK/imgpipe.yaml

# ---------------------------------------------------------------------------------------------
say "Starting Glance (Debian's glance-api) in $NS_CTRL, the coordinator, and the agents"
ip netns exec $NS_CTRL tests/support/openstack-local.sh start "$WORK/openstack" $GLANCE_PORT
start host "$WORK/logs/coordinator.log" "$BIN/imgpipe-coordinator" --config "$WORK/coordinator.yaml"
sleep 0.5
start $NS_BUILD "$WORK/logs/build-1.log" "$BIN/imgpipe-agent-build" --config "$WORK/agent-build.yaml"
start $NS_RELAY "$WORK/logs/relay-1.log" "$BIN/imgpipe-agent-relay" --config "$WORK/agent-relay.yaml"
start $NS_CTRL "$WORK/logs/ctrl-a.log" "$BIN/imgpipe-agent-glance" --config "$WORK/agent-glance.yaml"
for _ in $(seq 100); do
  [ "$("$BIN/imgpipe" --json agents 2>/dev/null | python3 -c 'import json,sys; print(sum(a["online"] for a in json.load(sys.stdin)))' 2>/dev/null)" = 3 ] && break
  sleep 0.2
done
"$BIN/imgpipe" agents

# ---------------------------------------------------------------------------------------------
# Each run's definition differs a little, so each run is a new version; from the second run on
# it carries one more package, and reaches the relay and the controller as a delta.
DEF="$WORK/debian-12-docker.yaml"
python3 - "$ROOT/deploy/examples/debian-12-docker.yaml" "$DEF" "$RUN" <<'PY'
import sys
src, dst, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(src).read()
if run >= 2:
    text = text.replace("install: [docker.io, qemu-guest-agent, curl, ca-certificates]",
                        "install: [docker.io, qemu-guest-agent, curl, ca-certificates, tmux]")
text = text.replace("files:\n", "files:\n  - path: /etc/imgpipe-quickstart\n    content: \"run %d\\n\"\n    mode: \"0644\"\n" % run, 1)
open(dst, "w").write(text)
PY
say "Run $RUN: submitting $(basename "$DEF") and following it (Ctrl-C stops the pipeline and removes its namespaces)"
"$BIN/imgpipe" validate "$DEF" | head -3
JOB=$("$BIN/imgpipe" --json submit "$DEF" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
if ! "$BIN/imgpipe" watch "$JOB"; then
  "$BIN/imgpipe" events "$JOB" | tail -20
  die "job $JOB failed; logs in $WORK/logs"
fi

# ---------------------------------------------------------------------------------------------
say "Delivered: the hops"
"$BIN/imgpipe" events "$JOB" | grep -E "delivered|delta|route" || true
say "The image in Glance"
IMAGE=$("$BIN/imgpipe" --json show "$JOB" | python3 -c 'import json,sys; print(json.load(sys.stdin)["glance_images"][0]["image_id"])')
GLANCE_DOC=$(ip netns exec $NS_CTRL curl -sf -H 'X-Identity-Status: Confirmed' -H 'X-Roles: admin,member,reader' \
  -H "X-Project-Id: $PROJECT" "http://127.0.0.1:$GLANCE_PORT/v2/images/$IMAGE") ||
  die "Glance did not return image $IMAGE"
ARTIFACT=$("$BIN/imgpipe" --json show "$JOB")
# What Glance holds is checked against what was built, not left to the reader.
GLANCE_DOC=$GLANCE_DOC ARTIFACT=$ARTIFACT python3 -c '
import json, os, sys
img = json.loads(os.environ["GLANCE_DOC"])
a = json.loads(os.environ["ARTIFACT"])["artifact"]
core = ["id", "name", "status", "size", "virtual_size", "disk_format", "container_format", "visibility",
        "min_disk", "min_ram", "tags", "os_hash_algo", "os_hash_value", "checksum"]
for k in core:
    print(f"  {k:22} {img.get(k)}")
print("  properties:")
for k in sorted(img):
    if k not in core and k not in ("created_at", "updated_at", "self", "file", "schema", "owner", "protected", "os_hidden", "stores"):
        print(f"    {k:26} {img[k]}")
print("  built sha256          ", a["sha256"])
print("  built sha512          ", a["sha512"])
ok = img.get("status") == "active" and img.get("os_hash_algo") == "sha512" \
    and img.get("os_hash_value") == a["sha512"] and img.get("size") == a["size"]
print("  check: " + ("active, and Glance holds exactly the bytes that were built (sha512, size)" if ok
                     else "MISMATCH between Glance and the built artifact"))
sys.exit(0 if ok else 1)
' || die "the image in Glance does not match the build"
echo
echo "Done: job $JOB, Glance image $IMAGE. Run scripts/quickstart.sh again to build and deliver the next version as a delta."
