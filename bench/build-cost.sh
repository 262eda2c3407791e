#!/usr/bin/env bash
# What compiling imgpipe costs on this machine: a clean configure and build into a scratch dir,
# timed per phase, then the edit-one-file loop a developer lives in.
#
#   bench/build-cost.sh [--json FILE] [--jobs N] [--keep] [--unity]
#
# Phases: configure; the quickstart's targets alone (what scripts/quickstart.sh builds); the
# rest (tests, benchmarks); then one library .cpp touched and the agent relinked. Prints
# configure_s, compile_quickstart_targets_s, compile_rest_s, compile_s (both builds),
# incremental_one_cpp_s, targets. `--unity` configures as scripts/test.sh and quickstart.sh do
# (IMGPIPE_UNITY_BUILD). Run from the checkout root; needs the build dependencies
# (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

json="" jobs="$(nproc)" keep=0 unity=OFF
while [ "$#" -gt 0 ]; do
  case "$1" in
    --json) json=${2:?--json needs a file}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --keep) keep=1; shift ;;
    --unity) unity=ON; shift ;;
    *) echo "usage: $0 [--json FILE] [--jobs N] [--keep] [--unity]" >&2; exit 2 ;;
  esac
done
command -v ninja >/dev/null || { echo "build-cost: ninja is missing (scripts/install-deps.sh)" >&2; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/imgpipe-build-cost-XXXXXX")
[ "$keep" = 1 ] || trap 'rm -rf "$scratch"' EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

quickstart_targets=(imgpipe imgpipe-coordinator imgpipe-agent-build imgpipe-agent-relay imgpipe-agent-glance)

t=$(now)
cmake -S . -B "$scratch" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGPIPE_UNITY_BUILD="$unity" \
  >"$scratch/configure.log"
configure_s=$(since "$t")

t=$(now)
cmake --build "$scratch" -j"$jobs" --target "${quickstart_targets[@]}" >"$scratch/quickstart.log"
quickstart_s=$(since "$t")

t=$(now)
cmake --build "$scratch" -j"$jobs" >"$scratch/rest.log"
rest_s=$(since "$t")
compile_s=$(awk -v a="$quickstart_s" -v b="$rest_s" 'BEGIN { printf "%.1f", a + b }')
targets=$(ninja -C "$scratch" -t targets all 2>/dev/null | grep -c -E '\.(o|a)|bin/' || true)

# A developer's loop: one .cpp of a library changes, the agent that links it is rebuilt.
touch agent-build/sandbox/sandbox.cpp
t=$(now)
cmake --build "$scratch" -j"$jobs" --target imgpipe-agent-build >"$scratch/incremental.log"
incremental_s=$(since "$t")

printf '%-32s %s\n' configure_s "$configure_s" compile_quickstart_targets_s "$quickstart_s" \
  compile_rest_s "$rest_s" compile_s "$compile_s" incremental_one_cpp_s "$incremental_s" \
  jobs "$jobs" targets "$targets" unity "$unity"
if [ -n "$json" ]; then
  printf '{"configure_s": %s, "compile_quickstart_targets_s": %s, "compile_rest_s": %s, "compile_s": %s, "incremental_one_cpp_s": %s, "jobs": %s, "targets": %s, "unity": "%s"}\n' \
    "$configure_s" "$quickstart_s" "$rest_s" "$compile_s" "$incremental_s" "$jobs" "$targets" "$unity" >"$json"
fi
