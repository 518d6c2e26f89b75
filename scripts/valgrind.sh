#!/usr/bin/env bash
# Runs a compile and a short training run under valgrind's memcheck and
# fails on any memory error or definitely lost block.
#
#   scripts/valgrind.sh [BUILD_DIR]     (default: build/, built if missing)
#
# Too slow for every CI run (the compile goes through LLVM: a minute or
# two); run it after changing how nnc or the runtime allocate.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
command -v valgrind >/dev/null || { echo "valgrind.sh: apt-get install valgrind" >&2; exit 2; }
[ -x "$build/compiler/nnc" ] || bash scripts/build.sh
tmp=$(mktemp -d /tmp/nnc-valgrind-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
    --error-exitcode=99)

check() { # NAME LOG: print the figures, fail on errors or definite leaks
  local name=$1 log=$2
  local lost errors
  lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tail -1)
  echo "valgrind.sh: $name: definitely lost ${lost:-0} bytes, ${errors:-?} errors;" \
       "$(grep -o 'total heap usage: .*' "$log" | tail -1)"
  if [ "${lost:-0}" != 0 ] || [ "${errors:-1}" != 0 ]; then
    echo "valgrind.sh: $name: see $log" >&2
    cp "$log" "/tmp/$(basename "$log")"
    return 1
  fi
}

status=0
"${vg[@]}" --log-file="$tmp/nnc.log" "$build/compiler/nnc" examples/moons.nn -o "$tmp/moons" || true
check "nnc examples/moons.nn" "$tmp/nnc.log" || status=1
"${vg[@]}" --log-file="$tmp/nnc-bad.log" "$build/compiler/nnc" tests/fuzz/corpus_frontend/errors_mix >/dev/null 2>&1 || true
check "nnc on a program with errors" "$tmp/nnc-bad.log" || status=1
if [ -x "$tmp/moons" ]; then
  "${vg[@]}" --log-file="$tmp/train.log" "$tmp/moons" --epochs 2 --threads 2 --save "$tmp/m.ckpt" >/dev/null || true
  check "moons --epochs 2 --threads 2 --save" "$tmp/train.log" || status=1
  "${vg[@]}" --log-file="$tmp/eval.log" "$tmp/moons" --load "$tmp/m.ckpt" --eval >/dev/null || true
  check "moons --load --eval" "$tmp/eval.log" || status=1
else
  echo "valgrind.sh: nnc did not produce the training binary" >&2
  status=1
fi
exit $status
