#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/) with clang, ASan and UBSan in
# build-fuzz/ and runs each for SECONDS (default 60), all at once: the front
# end (fuzz_frontend), the data and checkpoint loaders (fuzz_loaders), the
# training binary's command line (fuzz_cli) and checkpoints loaded through
# the embedding API (fuzz_checkpoint), and nnc import's ONNX reader
# (fuzz_onnx).
#
#   scripts/fuzz.sh [SECONDS]       fuzz; exit 1 if anything was found
#   scripts/fuzz.sh --seeds         rewrite tests/fuzz/corpus_loaders/ and the
#                                   ckpt-* seeds of tests/fuzz/corpus_checkpoint/
#
# The committed seeds (tests/fuzz/corpus_*) are copied into a working corpus
# in build-fuzz/corpus/, which grows from run to run.  A finding is saved in
# build-fuzz/artifacts/TARGET/ and can be replayed with
#   build-fuzz/tests/fuzz/TARGET FILE
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=60
seeds=0
case "${1:-}" in
  --seeds) seeds=1 ;;
  '') ;;
  *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS | --seeds]" >&2; exit 2 ;;
  *) secs=$1 ;;
esac

command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
CC=clang cmake -S . -B build-fuzz -DNNC_FUZZ=ON -DNNC_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=(frontend loaders cli checkpoint onnx)
cmake --build build-fuzz --target "${targets[@]/#/fuzz_}" -j"$(nproc)" >/dev/null

if [ $seeds = 1 ]; then
  rm -f tests/fuzz/corpus_loaders/*
  NNC_FUZZ_WRITE_SEEDS=$root/tests/fuzz/corpus_loaders build-fuzz/tests/fuzz/fuzz_loaders
  echo "fuzz.sh: $(ls tests/fuzz/corpus_loaders | wc -l) seeds in tests/fuzz/corpus_loaders"
  rm -f tests/fuzz/corpus_checkpoint/ckpt-*   # the regress-* inputs stay
  NNC_FUZZ_WRITE_SEEDS=$root/tests/fuzz/corpus_checkpoint build-fuzz/tests/fuzz/fuzz_checkpoint
  echo "fuzz.sh: $(ls tests/fuzz/corpus_checkpoint | wc -l) seeds in tests/fuzz/corpus_checkpoint"
  exit 0
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
pids=()
for t in "${targets[@]}"; do
  mkdir -p build-fuzz/corpus/$t build-fuzz/artifacts/$t
  cp -n tests/fuzz/corpus_$t/* build-fuzz/corpus/$t/ 2>/dev/null || true
  dict=()
  [ -f tests/fuzz/$t.dict ] && dict=(-dict=tests/fuzz/$t.dict)
  build-fuzz/tests/fuzz/fuzz_$t build-fuzz/corpus/$t "${dict[@]}" \
    -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/artifacts/$t/ -print_final_stats=1 \
    >build-fuzz/fuzz_$t.log 2>&1 &
  pids+=($!)
done
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  if ! wait "${pids[$i]}"; then
    status=1
    echo "fuzz.sh: fuzz_$t found a problem; see build-fuzz/fuzz_$t.log and build-fuzz/artifacts/$t/" >&2
    grep -E "ERROR|runtime error|fuzz target exited|SUMMARY" build-fuzz/fuzz_$t.log | head -5 >&2 || true
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' build-fuzz/fuzz_$t.log)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' build-fuzz/fuzz_$t.log)
  echo "fuzz.sh: fuzz_$t: ${execs:-?} executions in ${secs} s (${rate:-?}/s), corpus $(ls build-fuzz/corpus/$t | wc -l) inputs"
done
exit $status
