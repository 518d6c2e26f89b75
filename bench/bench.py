#!/usr/bin/env python3
"""nnc vs PyTorch, side by side, in one run.

For each model (examples/mlp.nn, examples/lenet.nn) this script
  1. times `nnc MODEL.nn -o MODEL` (best of 3),
  2. trains the compiled binary for E epochs with 1 and 2 threads and reads its
     samples/s and test accuracy; peak RSS comes from /usr/bin/time,
  3. where /usr/bin/python3 has torch, trains the same network (same data,
     initialisation scheme and hyper-parameters, bench/torch_ref.py) with 1 and
     2 torch threads, with OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 in
     that command only (Debian's OpenBLAS 0.3.21 mis-detects this CPU), and
     keeps PyTorch's best,
  4. prints a table and the nnc/PyTorch ratios.

Usage: bench/bench.py [--models mlp,lenet] [--epochs N] [--no-torch] [--nnc PATH]
Only the standard library is used here, so any python3 runs it.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_PY = "/usr/bin/python3"


def run(cmd, env=None, timeout=3600):
    """Runs cmd, returns (stdout+stderr text, peak RSS in MiB) via /usr/bin/time."""
    full = ["/usr/bin/time", "-f", "NNC_BENCH_RSS_KB %M"] + cmd
    p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env, timeout=timeout)
    out = p.stdout
    m = re.search(r"NNC_BENCH_RSS_KB (\d+)", out)
    rss = int(m.group(1)) / 1024.0 if m else float("nan")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{out}")
    return out, rss


def nnc_compile(nnc, model, outdir):
    src = os.path.join(ROOT, "examples", f"{model}.nn")
    exe = os.path.join(outdir, model)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([nnc, src, "-o", exe], check=True)
        best = min(best, time.perf_counter() - t)
    return exe, best


def nnc_train(exe, epochs, threads):
    out, rss = run([exe, "--epochs", str(epochs), "--threads", str(threads)])
    lines = [l for l in out.splitlines() if l.startswith("epoch")]
    if not lines:
        raise RuntimeError(f"no epoch lines from {exe}:\n{out}")
    sps = [float(re.search(r"([0-9.e+]+) samples/s", l).group(1)) for l in lines]
    acc = float(re.search(r"test_acc ([0-9.]+)", lines[-1]).group(1))
    return {"samples_per_s": max(sps), "mean_samples_per_s": sum(sps) / len(sps), "test_acc": acc,
            "rss_mib": rss, "lines": lines}


def have_torch():
    if not os.path.exists(TORCH_PY):
        return False
    return subprocess.run([TORCH_PY, "-c", "import torch"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def torch_train(model, epochs, threads):
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX", OPENBLAS_NUM_THREADS="1")
    out, rss = run([TORCH_PY, os.path.join(ROOT, "bench", "torch_ref.py"), "--model", model,
                    "--epochs", str(epochs), "--threads", str(threads), "--json"], env=env)
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    sps = [e["train_samples_per_s"] for e in res["epochs"]]
    return {"samples_per_s": max(sps), "mean_samples_per_s": sum(sps) / len(sps),
            "test_acc": res["epochs"][-1]["test_acc"], "rss_mib": rss}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp,lenet")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "compiler", "nnc"))
    ap.add_argument("--json", help="also write all figures to this file")
    args = ap.parse_args()

    if not os.path.exists(args.nnc):
        sys.exit(f"bench: {args.nnc} not found; build first (bash scripts/build.sh)")
    use_torch = not args.no_torch and have_torch()
    if not args.no_torch and not use_torch:
        print("bench: /usr/bin/python3 has no torch (apt-get install python3-torch "
              "libopenblas0-pthread); nnc figures only", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="nnc-bench-")
    report = {}
    try:
        for model in args.models.split(","):
            exe, ctime = nnc_compile(args.nnc, model, tmp)
            r = {"compile_s": ctime, "nnc": {}, "torch": {}}
            for th in (1, 2):
                r["nnc"][th] = nnc_train(exe, args.epochs, th)
                print(f"{model}: nnc {th} thread(s): {r['nnc'][th]['samples_per_s']:,.0f} samples/s, "
                      f"test acc {r['nnc'][th]['test_acc']:.4f}, RSS {r['nnc'][th]['rss_mib']:.1f} MiB",
                      flush=True)
            if use_torch:
                for th in (1, 2):
                    r["torch"][th] = torch_train(model, args.epochs, th)
                    print(f"{model}: torch {th} thread(s): {r['torch'][th]['samples_per_s']:,.0f} samples/s, "
                          f"test acc {r['torch'][th]['test_acc']:.4f}, RSS {r['torch'][th]['rss_mib']:.1f} MiB",
                          flush=True)
            report[model] = r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"{'model':6} {'epochs':>6} {'compile':>8} {'nnc 1t':>10} {'nnc 2t':>10} {'torch best':>11} "
          f"{'ratio':>6} {'2t/1t':>6} {'acc nnc':>8} {'acc torch':>9} {'RSS nnc':>8} {'RSS torch':>9} {'RSS ratio':>9}")
    for model, r in report.items():
        n1, n2 = r["nnc"][1], r["nnc"][2]
        best_n = max(n1["samples_per_s"], n2["samples_per_s"])
        rss_n = max(n1["rss_mib"], n2["rss_mib"])
        line = (f"{model:6} {args.epochs:>6} {r['compile_s']:>7.2f}s {n1['samples_per_s']:>10,.0f} "
                f"{n2['samples_per_s']:>10,.0f}")
        if r["torch"]:
            tb = max(r["torch"].values(), key=lambda t: t["samples_per_s"])
            rss_t = min(t["rss_mib"] for t in r["torch"].values())
            line += (f" {tb['samples_per_s']:>11,.0f} {best_n / tb['samples_per_s']:>6.2f}"
                     f" {n2['samples_per_s'] / n1['samples_per_s']:>6.2f} {n2['test_acc']:>8.4f}"
                     f" {tb['test_acc']:>9.4f} {rss_n:>7.1f}M {rss_t:>8.1f}M {rss_n / rss_t:>9.3f}")
        else:
            line += (f" {'-':>11} {'-':>6} {n2['samples_per_s'] / n1['samples_per_s']:>6.2f}"
                     f" {n2['test_acc']:>8.4f} {'-':>9} {rss_n:>7.1f}M {'-':>9} {'-':>9}")
        print(line)
    print("\nratio = nnc best samples/s / PyTorch best samples/s (training, batch 64); "
          "RSS ratio = nnc peak RSS / PyTorch's smallest peak RSS")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    main()
