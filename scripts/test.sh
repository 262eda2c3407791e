#!/usr/bin/env bash
# Sets up and runs the tests: installs every dependency (Debian packages), builds, and runs
# ctest. Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` for the fast tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
# Unity batches: a build from nothing takes about two thirds of the time (CMakeLists.txt says
# why it is not the default for an edit loop).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGPIPE_UNITY_BUILD=ON
cmake --build build -j"$(nproc)"
# libFuzzer needs clang: the fuzz targets get a small build of their own.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DIMGPIPE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz -j"$(nproc)"

# One ctest job per core: a test waiting on a mirror, a shaped link or a service overlaps
# another's work; a test that needs the whole machine says so (CORES in cmake/Testing.cmake).
cores="$(nproc)"
status=0
(cd build && ctest --output-on-failure --timeout 1800 -j"$cores" "$@") || status=$?
if [ "$#" -eq 0 ] || [[ " $* " == *" fuzz "* ]]; then
  (cd build-fuzz && ctest --output-on-failure -j"$cores" -L fuzz) || status=$?
fi
exit "$status"
