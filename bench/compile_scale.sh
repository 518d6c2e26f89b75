#!/usr/bin/env bash
# compile_scale.sh - compile time and peak memory of nnc against program size.
#
# Generates .nn programs of several shapes at each size (lines) and times
# nnc on each with /usr/bin/time, at two stages:
#   ir   `nnc FILE --emit-ir`: parse, checks, autodiff, fusion, memory plan
#        (all of nnc's own passes, no LLVM);
#   exe  `nnc FILE -o OUT` at -O2: the whole compile and link, LLVM included,
#        only for programs of at most --exe-max lines (LLVM spends several
#        milliseconds per generated kernel, so 100,000 layers take an hour).
# Each row: shape, lines, then seconds (wall) and peak RSS per stage, and
# nnc's exit status.  Compile time and memory should grow about linearly
# with the lines: a quadratic pass shows as x100 from 1k to 10k lines.
#
#   bash bench/compile_scale.sh [--nnc PATH] [--sizes "1000 10000 100000"]
#                               [--shapes "comments blank ..."] [--exe-max N]
#                               [--timeout SECONDS]
#   bash bench/compile_scale.sh --gen SHAPE LINES > prog.nn   # just write one
#
# Shapes (each a complete program around the lines that scale):
#   comments  LINES comment lines before a one-layer model
#   blank     LINES blank lines before it
#   defs      LINES definitions, each using the previous one (v2 = v1 * 0.5)
#   dense     LINES dense layers of width 8, each followed by a relu
#   acts      LINES chained activations (tanh, relu, sigmoid in turn)
#   unknown   LINES definitions using names that do not exist (errors:
#             exit 1 is the expected result, after the first 20 errors)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
nnc=$here/build/compiler/nnc
sizes="1000 10000 100000"
shapes="comments blank defs dense acts unknown"
timeout_s=600
exe_max=10000

# The program of shape $1 with about $2 lines that scale, on stdout.
gen() {
	local shape=$1 n=$2
	echo "model scale"
	echo "input x : f32[2]"
	echo "label y : class(2)"
	case $shape in
	comments) awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "# comment line %d of the program\n", i }'
		echo "v0 = x |> dense(8)" ;;
	blank) awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) print "" }'
		echo "v0 = x |> dense(8)" ;;
	defs) echo "v0 = x |> dense(8)"
		awk -v n="$n" 'BEGIN { for (i = 1; i < n; i++) printf "v%d = v%d * 0.5\n", i, i - 1 }' ;;
	dense) echo "v0 = x |> dense(8)"
		awk -v n="$n" 'BEGIN { for (i = 1; i < n; i++) printf "v%d = v%d |> dense(8) |> relu\n", i, i - 1 }' ;;
	acts) echo "v0 = x |> dense(8)"
		awk -v n="$n" 'BEGIN { split("tanh relu sigmoid", a, " ");
			for (i = 1; i < n; i++) printf "v%d = v%d |> %s\n", i, i - 1, a[i % 3 + 1] }' ;;
	unknown) echo "v0 = x |> dense(8)"
		awk -v n="$n" 'BEGIN { for (i = 1; i < n; i++) printf "v%d = w%d |> relu\n", i, i }' ;;
	*) echo "compile_scale.sh: unknown shape '$shape'" >&2; exit 2 ;;
	esac
	local last=v0
	case $shape in defs | dense | acts) last=v$((n - 1)) ;; esac
	echo "loss softmax_cross_entropy($last |> dense(2), y)"
	echo "optimizer sgd(lr: 0.01)"
	echo "train {"
	echo "  data: moons(count: 64)"
	echo "  batch: 8"
	echo "  epochs: 1"
	echo "}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--gen) gen "$2" "$3"; exit 0 ;;
	--nnc) nnc=$2; shift 2 ;;
	--sizes) sizes=$2; shift 2 ;;
	--shapes) shapes=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--exe-max) exe_max=$2; shift 2 ;;
	*) echo "usage: compile_scale.sh [--nnc PATH] [--sizes LIST] [--shapes LIST] [--exe-max N] [--timeout S] | --gen SHAPE LINES" >&2
		exit 2 ;;
	esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs nnc with the arguments given; prints "SECONDS MIB STATUS".
measure() {
	local rc secs kib
	set +e
	/usr/bin/time -f '%e %M' -o "$work/time" timeout "$timeout_s" "$nnc" "$@" > /dev/null 2> "$work/err"
	rc=$?
	set -e
	read -r secs kib < <(tail -n 1 "$work/time")
	[ "$rc" = 124 ] && secs=">$timeout_s"
	printf '%s %.0f %s\n' "$secs" "$(echo "$kib / 1024" | bc -l)" "$rc"
}

printf '%-9s %7s | %9s %8s | %9s %8s | %s\n' shape lines "ir s" "ir MiB" "exe s" "exe MiB" exit
for shape in $shapes; do
	for n in $sizes; do
		prog=$work/$shape-$n.nn
		gen "$shape" "$n" > "$prog"
		read -r is im irc < <(measure "$prog" --emit-ir -o /dev/null)
		es=- em=- erc=-
		if [ "$n" -le "$exe_max" ]; then
			read -r es em erc < <(measure "$prog" -o "$work/out")
			rm -f "$work/out"
		fi
		printf '%-9s %7d | %9s %8s | %9s %8s | %s\n' "$shape" "$(wc -l < "$prog")" "$is" "$im" "$es" "$em" \
			"$irc/$erc"
	done
done
