#!/usr/bin/env bash
# Sets up and runs the tests: installs every dependency (Debian packages), builds, and runs
# ctest. Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` for the fast tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 1800 "$@"
