#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. install what is missing, build with -Werror in build/, run every test;
#   2. build again with AddressSanitizer + UndefinedBehaviorSanitizer in
#      build-asan/ and run every test there too, leak checks on (training
#      binaries that tests build are linked with the sanitizers as well);
#   3. fuzz the front end and the loaders for FUZZ_SECONDS each (default
#      60, both at once; 0 skips), from the seeds in tests/fuzz/.
# NNC_TEST_QUICK=1 stops after step 1.  Each step prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t0=$SECONDS
step() { echo "test.sh: $1 ($((SECONDS - t0)) s so far)"; }

bash scripts/deps.sh
bash scripts/build.sh -DNNC_WERROR=ON
(cd build && ctest --output-on-failure -j1 --timeout 600)
step "release build and tests passed"
[ "${NNC_TEST_QUICK:-0}" = 1 ] && exit 0

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNC_SANITIZE=ON -DNNC_WERROR=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
(
  cd build-asan
  export CC=$root/build-asan/cc-sanitize
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --output-on-failure -j1 --timeout 1200
)
step "ASan+UBSan build and tests passed"

secs=${FUZZ_SECONDS:-60}
if [ "$secs" -gt 0 ]; then
  # clang with its sanitizer and libFuzzer runtimes
  if ! command -v clang >/dev/null || ! dpkg -s libclang-rt-14-dev >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q clang libclang-rt-14-dev
  fi
  bash scripts/fuzz.sh "$secs"
  step "fuzzing found nothing"
fi
