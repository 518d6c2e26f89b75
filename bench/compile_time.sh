#!/usr/bin/env bash
# compile_time.sh - how long `nnc examples/MODEL.nn -o MODEL` takes, for one
# or more nnc binaries measured in turns (issue #12: ResNet in under 1 s).
#
# Each round compiles every model once with every binary, in that order, so
# that a change in the machine's load hits all of them alike; the figures
# are CPU (user + system) and wall seconds from /usr/bin/time, the load
# average before and after, and per model and binary the runs sorted, the
# median and, for the wall time, the median's ratio to the 1 s target.
# The machine's other work shows in the wall times: note the load.
#
#   bash bench/compile_time.sh [--runs N] [--models "mlp lenet vgg resnet"]
#                              [NAME=PATH ...]
#   (default: now=build/compiler/nnc)
#
# Example, against a build of the base commit in /tmp/base:
#   bash bench/compile_time.sh --runs 5 base=/tmp/base/build/compiler/nnc now=build/compiler/nnc
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=5
models="mlp lenet vgg resnet"
bins=()
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--models) models=$2; shift 2 ;;
	*=*) bins+=("$1"); shift ;;
	*) echo "compile_time.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ ${#bins[@]} -gt 0 ] || bins=("now=$here/build/compiler/nnc")
for b in "${bins[@]}"; do
	[ -x "${b#*=}" ] || { echo "compile_time.sh: ${b#*=} is not an executable" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= runs; r++)); do
	for m in $models; do
		for b in "${bins[@]}"; do
			name=${b%%=*} nnc=${b#*=}
			/usr/bin/time -f "%U %S %e" -o "$tmp/t" "$nnc" "$here/examples/$m.nn" -o "$tmp/$m.$name" --force \
				>/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
			read -r u s e <"$tmp/t"
			echo "$m $name $(echo "$u + $s" | bc -l) $e" >>"$tmp/all"
		done
	done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-8s %-34s %-34s %s\n' model nnc "CPU s (sorted, median)" "wall s (sorted, median)" "wall / 1 s"
for m in $models; do
	for b in "${bins[@]}"; do
		name=${b%%=*}
		cpu=$(awk -v m="$m" -v n="$name" '$1 == m && $2 == n {print $3}' "$tmp/all" | sort -n | xargs printf '%.2f ')
		wall=$(awk -v m="$m" -v n="$name" '$1 == m && $2 == n {print $4}' "$tmp/all" | sort -n | xargs printf '%.2f ')
		med() { echo "$1" | tr ' ' '\n' | grep . | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
		mw=$(med "$wall")
		printf '%-8s %-8s %-34s %-34s %.2f\n' "$m" "$name" "$cpu($(med "$cpu"))" "$wall($mw)" "$mw"
	done
done
