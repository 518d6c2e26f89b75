#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh -DNNC_WERROR=ON
cd build
ctest --output-on-failure -j1 --timeout 600
