#!/usr/bin/env bash
# Data-parallel training (docs/distributed.md): the measured cost of the
# exchange per step at N = 1, 2, 4 ranks on this machine (ordered, overlapped
# with the backward pass and --no-overlap, --reduce-scatter, and --allreduce
# overlapped and not: --profile's exposed and overlapped times), then a projection
# to 2-64 machines on 10 and 100 Gbit/s links.  bench/README.md explains
# the model and its assumptions.
#
#   bash bench/dist_scale.sh [--models lenet,mlp,resnet] [--steps 40] [--no-measure]
#
# Needs a build with MPI (bash scripts/build.sh; libnnrt_mpi) and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
models=lenet,mlp,resnet
steps=40
measure=1
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --no-measure) measure=0; shift ;;
    *) echo "usage: $0 [--models a,b] [--steps N] [--no-measure]" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d /tmp/nnc-dist-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
rows="$tmp/rows"
: > "$rows"
for m in ${models//,/ }; do
  batch=$(sed -n 's/^ *batch: *\([0-9]*\).*/\1/p' "examples/$m.nn" | head -1)
  # --profile: the binary reports the exchange (count, bytes, time per step)
  build/compiler/nnc "examples/$m.nn" --chunks 4 --profile -o "$tmp/$m" >/dev/null
  # one process, one thread: the compute time of a step (no exchange)
  out=$("$tmp/$m" --limit $((steps * batch)) --warmup 0 --test-limit 1 --epochs 1 --threads 1)
  sps=$(sed -n 's/.*  \([0-9.e+]*\) samples\/s.*/\1/p' <<<"$out" | head -1)
  params=$(sed -n 's/^model [^:]*: \([0-9]*\) parameters.*/\1/p' <<<"$out")
  echo "$m batch=$batch params=$params sps1=$sps" >> "$rows"
  [ $measure = 1 ] || continue
  for n in 1 2 4; do
    # the four exchanges side by side, one after the other, at each N
    for mode in ordered ordered,--no-overlap ordered,--reduce-scatter --allreduce --allreduce,--no-overlap; do
      flags=${mode#ordered}
      out=$(mpirun --oversubscribe -np $n "$tmp/$m" --limit $((steps * batch)) --warmup 0 --test-limit 1 --epochs 1 \
            --threads 1 ${flags//,/ } 2>&1)
      mb=$(sed -n 's/.*exchanges, \([0-9.]*\) MB received.*/\1/p' <<<"$out" | head -1)
      ex=$(sed -n 's/^exchange: \([0-9.]*\) ms exposed, \([0-9.]*\) ms overlapped per step.*/\1 \2/p' <<<"$out" | head -1)
      sps=$(sed -n 's/.*  \([0-9.e+]*\) samples\/s.*/\1/p' <<<"$out" | head -1)
      echo "$m measured n=$n mode=${mode#,} mb=$mb ms=${ex// /,} samples/s=$sps" >> "$rows"
    done
  done
done
python3 - "$rows" <<'PY'
import re, sys
rows = open(sys.argv[1]).read().splitlines()
print("## measured on this machine (--threads 1 per rank, --chunks 4; ranks share 2 cores)\n")
print("| model | N | exchange | MB received per step | exposed ms per step | overlapped ms per step | samples/s |")
print("|---|---:|---|---:|---:|---:|---:|")
models = {}
for r in rows:
    if " measured " in r:
        m = re.match(r"(\S+) measured n=(\d+) mode=(\S+) mb=([0-9.]+) ms=([0-9.]+),([0-9.]+) samples/s=(\S*)", r)
        if m:
            mode = m[3].replace(",", " ")
            print(f"| {m[1]} | {m[2]} | {mode} | {float(m[4]):.3f} | {float(m[5]):.2f} | {float(m[6]):.2f} | {m[7]} |")
        else:
            print(f"| {r} (no profile line) |")
    else:
        m = re.match(r"(\S+) batch=(\d+) params=(\d+) sps1=(\S+)", r)
        models[m[1]] = (int(m[2]), int(m[3]), float(m[4]))
print()
# The projection (bench/README.md): a step of the global batch B costs
# compute B / (N * r1) on N machines (r1: one machine's samples/s, here
# one process on this 2-core machine, i.e. assuming each machine is this
# one) plus the exchange, not overlapped:
#   allreduce (ring): 2 (N-1)/N * 4P / bw + 2 (N-1) * lat
#   ordered (every chunk's gradient to every rank, K = N chunks):
#                     (N-1) * 4P / bw + (N-1) * lat   (a ring allgather)
for name, (B, P, r1) in models.items():
    for weak in (False, True):
        print(f"### {name}: {P} parameters ({4*P/1e6:.2f} MB of gradients), "
              + (f"global batch {B} x N (weak scaling)" if weak else f"global batch {B} (strong scaling)")
              + f", one machine {r1:.0f} samples/s\n")
        print("| N | link | ordered samples/s | eff. | allreduce samples/s | eff. |")
        print("|---:|---|---:|---:|---:|---:|")
        for bw_g, lat in ((10, 30e-6), (100, 5e-6)):
            bw = bw_g * 1e9 / 8
            for n in (2, 4, 8, 16, 32, 64):
                b = B * n if weak else B
                comp = b / (n * r1)
                ring = 2 * (n - 1) / n * 4 * P / bw + 2 * (n - 1) * lat
                ordered = (n - 1) * 4 * P / bw + (n - 1) * lat
                so, sa = b / (comp + ordered), b / (comp + ring)
                print(f"| {n} | {bw_g} Gbit/s | {so:,.0f} | {so / (n * r1):.2f} | {sa:,.0f} | {sa / (n * r1):.2f} |")
        print()
PY
