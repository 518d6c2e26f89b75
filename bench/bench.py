#!/usr/bin/env python3
"""nnc vs PyTorch, side by side, in one run.

For each model of MODELS (its .nn file and the bench/torch_ref.py model that
is the same network in PyTorch) this script
  1. times `nnc MODEL.nn -o MODEL` (best of 3),
  2. trains the compiled binary for E epochs with 1 and 2 threads and reads its
     samples/s and test accuracy; peak RSS comes from /usr/bin/time,
  3. where /usr/bin/python3 has torch, trains the same network (same data,
     initialisation scheme and hyper-parameters, bench/torch_ref.py) with 1 and
     2 torch threads, with OPENBLAS_CORETYPE (SkylakeX where the CPU has
     AVX-512, Zen on an AVX2 AMD, else Haswell) and OPENBLAS_NUM_THREADS=1 in that command only
     (Debian's OpenBLAS 0.3.21 mis-detects these CPUs), and keeps PyTorch's
     best,
  4. measures inference (forward only) at batch 64 and batch 1: nnc through
     the generated header (bench/infer_bench.c on `nnc -c --prefix model`),
     PyTorch with torch.inference_mode (bench/torch_ref.py --infer),
  5. with --profile, compiles `nnc --profile` and prints GFLOP/s per kernel
     class next to the machine's peak from bench/peak.c,
  6. prints a table and the nnc/PyTorch ratios.
Steps 2-4 run --repeat rounds (default 3), nnc and PyTorch taking turns, and
each side keeps its best figure: the machine's speed drifts by 10-30 %.

With --bf16, every model is also trained as `nnc --precision bf16` and by PyTorch under
torch.cpu.amp.autocast(dtype=torch.bfloat16), and a second table gives bf16 / float32 on
each side and the test accuracies.

Usage: bench/bench.py [--models mlp,lenet,resnet,vgg] [--epochs N] [--limit N] [--repeat N] [--no-torch] [--no-infer]
                      [--profile] [--bf16] [--nnc PATH]
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

# model -> (its .nn file, relative to the repository; bench/torch_ref.py's --model for the same
# network).  resnet_plain and vgg_plain are the two networks without batchnorm and dropout: side
# by side with the full ones they show what the normalisation costs on each side.
MODELS = {
    "mlp": ("examples/mlp.nn", "mlp"),
    "lenet": ("examples/lenet.nn", "lenet"),
    "resnet": ("examples/resnet.nn", "resnet"),
    "vgg": ("examples/vgg.nn", "vgg"),
    "resnet_plain": ("bench/models/resnet_plain.nn", "resnet_plain"),
    "vgg_plain": ("bench/models/vgg_plain.nn", "vgg_plain"),
    "charlm": ("examples/charlm.nn", "charlm"),  # its own comparison: charlm_bench (bench/torch_charlm.py)
    "charlstm": ("examples/charlstm.nn", "charlstm"),  # the same comparison, torch_charlm.py --model charlstm
}


def nn_file(model):
    return os.path.join(ROOT, MODELS[model][0])


def openblas_coretype(cpuinfo):
    """OpenBLAS's kernels for a CPU, from the text of /proc/cpuinfo: SkylakeX (AVX-512) where
    it has avx512f; without it, Zen on an AMD CPU of family 23 or later (Zen 1-3: what OpenBLAS
    0.3.21 itself detects on today's EPYC, the AVX2 kernels with Zen's blocking) and Haswell
    (AVX2) on any other. SkylakeX's kernels die of SIGILL without AVX-512, and the inherited
    environment may name any of them."""
    first = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    if " avx512f" in " " + first.get("flags", ""):
        return "SkylakeX"
    family = first.get("cpu family", "0")
    if first.get("vendor_id") == "AuthenticAMD" and family.isdigit() and int(family) >= 23:
        return "Zen"
    return "Haswell"


def torch_env():
    """The environment of a PyTorch command: OpenBLAS's kernels chosen for this CPU
    (openblas_coretype), one OpenBLAS thread."""
    with open("/proc/cpuinfo") as f:
        coretype = openblas_coretype(f.read())
    return dict(os.environ, OPENBLAS_CORETYPE=coretype, OPENBLAS_NUM_THREADS="1")


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


def nnc_compile(nnc, model, outdir, precision=None):
    src = nn_file(model)
    exe = os.path.join(outdir, model + (f"-{precision}" if precision else ""))
    flags = ["--precision", precision] if precision else []
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([nnc, src, "-o", exe] + flags, check=True)
        best = min(best, time.perf_counter() - t)
    return exe, best


def limit_args(limit):
    """--limit for either side (torch_ref.py takes it as nnc's binaries do)."""
    return ["--limit", str(limit)] if limit else []


def nnc_limit_args(limit):
    # a slice is too short for a model's warmup (examples/resnet.nn: one epoch): none then.
    # Only nnc's side has a schedule; torch_ref.py has no --warmup.
    return limit_args(limit) + (["--warmup", "0"] if limit else [])


def nnc_train(exe, epochs, threads, limit=None):
    out, rss = run([exe, "--epochs", str(epochs), "--threads", str(threads)] + nnc_limit_args(limit))
    lines = [l for l in out.splitlines() if l.startswith("epoch")]
    if not lines:
        raise RuntimeError(f"no epoch lines from {exe}:\n{out}")
    sps = [float(re.search(r"([0-9.e+]+) samples/s", l).group(1)) for l in lines]
    acc = float(re.search(r"test_acc ([0-9.]+)", lines[-1]).group(1))
    return {"samples_per_s": max(sps), "mean_samples_per_s": sum(sps) / len(sps), "test_acc": acc,
            "rss_mib": rss, "lines": lines}


def nnc_infer_build(nnc, model, outdir):
    """infer_bench (inference samples/s at batch 64 and 1 through the generated C API) for a model."""
    d = os.path.join(outdir, f"infer-{model}")
    os.makedirs(d, exist_ok=True)
    obj = os.path.join(d, "model.o")
    subprocess.run([nnc, nn_file(model), "-c", "--prefix", "model", "-o", obj],
                   check=True)
    exe = os.path.join(d, "infer_bench")
    lib = os.path.join(os.path.dirname(os.path.dirname(nnc)), "runtime", "libnnrt.a")
    subprocess.run(["cc", "-O2", "-I", d, "-I", os.path.join(ROOT, "runtime"),
                    os.path.join(ROOT, "bench", "infer_bench.c"), obj, lib, "-fopenmp", "-lz", "-lm", "-o", exe],
                   check=True)
    return exe


def nnc_infer_run(exe, th):
    out = subprocess.run([exe, str(th)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def keep_best(old, new, keys, rss):
    """Best of repeated runs: the higher figure of each key (the accuracy goes with the best
    samples/s); the peak RSS combined by `rss` (nnc: max, its worst; PyTorch: min, its best)."""
    if old is None:
        return new
    out = dict(old)
    for k in keys:
        if new[k] > old[k]:
            out[k] = new[k]
            if k == "samples_per_s":
                out.update({kk: new[kk] for kk in ("mean_samples_per_s", "test_acc", "lines") if kk in new})
    if "rss_mib" in new:
        out["rss_mib"] = rss(old["rss_mib"], new["rss_mib"])
    return out


def train_line(v):
    return f"{v['samples_per_s']:,.0f} samples/s, test acc {v['test_acc']:.4f}, RSS {v['rss_mib']:.1f} MiB"


def infer_line(v):
    return f"batch 64 {v['infer_batch64']:,.0f}/s, batch 1 {v['infer_batch1']:,.0f}/s"


def nnc_profile(nnc, model, outdir, epochs, limit=None):
    """Per-class GFLOP/s of a `nnc --profile` build, one thread."""
    exe = os.path.join(outdir, f"{model}-prof")
    subprocess.run([nnc, nn_file(model), "--profile", "-o", exe], check=True)
    out = subprocess.run([exe, "--epochs", str(epochs), "--threads", "1"] + nnc_limit_args(limit), check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    classes = {}
    on = False
    for line in out.splitlines():
        if "by class:" in line:
            on = True
            continue
        m = re.match(r"\s+(\S+(?: \S+)?)\s+([0-9.]+) ms\s+([0-9.]+) %(?:\s+([0-9.]+) GFLOP/s)?", line)
        if on and m:
            classes[m.group(1)] = {"ms": float(m.group(2)), "share": float(m.group(3)),
                                   "gflops": float(m.group(4)) if m.group(4) else None}
    return classes


def machine_peak(outdir):
    exe = os.path.join(outdir, "peak")
    subprocess.run(["cc", "-O3", "-march=native", "-fopenmp", os.path.join(ROOT, "bench", "peak.c"), "-o", exe],
                   check=True)
    out = subprocess.run([exe, "2"], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def torch_infer(model, threads):
    out, _ = run([TORCH_PY, os.path.join(ROOT, "bench", "torch_ref.py"), "--model", MODELS[model][1], "--epochs", "1",
                  "--limit", "640", "--threads", str(threads), "--infer", "--json"], env=torch_env())
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    return {"infer_batch64": res["infer_samples_per_s_batch64"], "infer_batch1": res["infer_samples_per_s_batch1"]}


def have_torch():
    if not os.path.exists(TORCH_PY):
        return False
    return subprocess.run([TORCH_PY, "-c", "import torch"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def torch_train(model, epochs, threads, limit=None, autocast=None):
    ac = ["--autocast", autocast] if autocast else []
    out, rss = run([TORCH_PY, os.path.join(ROOT, "bench", "torch_ref.py"), "--model", MODELS[model][1],
                    "--epochs", str(epochs), "--threads", str(threads), "--json"] + limit_args(limit) + ac,
                   env=torch_env())
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    sps = [e["train_samples_per_s"] for e in res["epochs"]]
    return {"samples_per_s": max(sps), "mean_samples_per_s": sum(sps) / len(sps),
            "test_acc": res["epochs"][-1]["test_acc"], "rss_mib": rss}


# ---- charlm (issue #16): the same transformer in PyTorch from nnc's initial weights ----

CHARLM_PY = os.path.join(ROOT, "bench", "torch_charlm.py")
SEQ_MODELS = ("charlm", "charlstm")  # compared by charlm_bench, not by the generic table


def charlm_torch(args, flag, model, threads, *extra):
    """torch_charlm.py --model MODEL (flag is "--model") on `threads` threads with `extra` arguments."""
    out, rss = run([TORCH_PY, CHARLM_PY, "--json", flag, model, "--threads", str(threads)] + [str(a) for a in extra],
                   env=torch_env())
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    res["rss_mib"] = rss
    return res


def charlm_nnc(exe, threads, limit, *extra):
    """One epoch over the first `limit` windows: samples/s and val_loss of its epoch line."""
    out, rss = run([exe, "--epochs", "1", "--limit", str(limit), "--threads", str(threads), "--verbose", "2"]
                   + [str(a) for a in extra])
    line = [l for l in out.splitlines() if l.startswith("epoch")][-1]
    return {"samples_per_s": float(re.search(r"([0-9.e+]+) samples/s", line).group(1)),
            "val_loss": float(re.search(r"val_loss ([0-9.]+)", line).group(1)), "rss_mib": rss, "line": line}


def step_losses(csv_path, batch):
    """Each step's batch loss from a --log-every 1 log: its rows hold running means over the
    samples seen (9 digits), so step s's loss is the difference of two running sums."""
    import csv
    rows = [r for r in csv.DictReader(open(csv_path)) if r["batch"]]
    sums = [float(r["train_loss"]) * int(r["batch"]) * batch for r in rows]
    return [(sums[i] - (sums[i - 1] if i else 0.0)) / batch for i in range(len(sums))]


def max_rel(a, b, n):
    return max(abs(x - y) / abs(y) for x, y in zip(a[:n], b[:n]))


def charlm_bench(args, exe, outdir, model="charlm"):
    """The comparison of examples/charlm.nn or charlstm.nn (`model`; issue #16): (1) loss curves from the same initial
    weights, windows and optimizer for --charlm-steps steps: nnc against PyTorch in float32, and
    PyTorch float32 against float64 (what rounding alone does); (2) training samples/s over the
    first --charlm-limit windows, nnc and PyTorch (1 and 2 threads each, --repeat rounds, taking
    turns, each side's best); (3) with --charlm-minutes M: the validation loss each reaches in M
    minutes of training (nnc stopped by SIGINT, which saves its checkpoint; its validation loss is
    computed by torch_charlm.py --eval-ckpt, the same code as PyTorch's)."""
    limit, nsteps = args.charlm_limit, args.charlm_steps
    check_limit = (nsteps * 32 * 20 + 18) // 19 + 32  # windows for nsteps steps after the 5 % validation split
    r = {"model": model, "limit": limit, "steps": nsteps, "check_limit": check_limit}
    init = os.path.join(outdir, f"{model}-init.ckpt")
    # the initial parameters and generator state (the same for any --limit)
    subprocess.run([exe, "--epochs", "0", "--limit", str(limit), "--save", init, "--quiet"], check=True)
    use_torch = not args.no_torch and have_torch()
    if use_torch:
        log = os.path.join(outdir, f"{model}-steps.csv")
        charlm_nnc(exe, 2, check_limit, "--log", log, "--log-every", "1")
        nl = step_losses(log, 32)
        t32 = charlm_torch(args, "--model", model, 1, "--init", init, "--limit", check_limit, "--steps", nsteps, "--log-losses")["losses"]
        t64 = charlm_torch(args, "--model", model, 1, "--init", init, "--limit", check_limit, "--steps", nsteps, "--log-losses",
                           "--double")["losses"]
        n = min(nsteps, len(nl), len(t32))
        r["loss_check"] = {"steps": n, "nnc_vs_torch32": max_rel(nl, t32, n), "nnc_vs_torch64": max_rel(nl, t64, n),
                           "torch32_vs_torch64": max_rel(t32, t64, n), "nnc": nl[:n], "torch32": t32[:n],
                           "torch64": t64[:n]}
        lc = r["loss_check"]
        print(f"{model}: losses of the first {n} steps, max relative difference: nnc vs PyTorch float32 "
              f"{lc['nnc_vs_torch32']:.2e}, nnc vs PyTorch float64 {lc['nnc_vs_torch64']:.2e}, PyTorch float32 vs "
              f"float64 {lc['torch32_vs_torch64']:.2e} (step 1: {nl[0]:.6f} / {t32[0]:.6f}; step {n}: "
              f"{nl[n - 1]:.6f} / {t32[n - 1]:.6f})", flush=True)
    r["nnc"], r["torch"] = {}, {}
    train_steps = None
    for rep in range(args.repeat):
        for th in (1, 2):
            v = charlm_nnc(exe, th, limit)
            r["nnc"][th] = max(r["nnc"].get(th, v), v, key=lambda e: e["samples_per_s"])
            print(f"{model}: nnc {th} thread(s): {v['samples_per_s']:,.1f} samples/s (round {rep + 1})", flush=True)
            if use_torch:
                t = charlm_torch(args, "--model", model, th, "--init", init, "--limit", limit)
                r["torch"][th] = max(r["torch"].get(th, t), t, key=lambda e: e["samples_per_s"])
                train_steps = t["steps"]
                print(f"{model}: PyTorch {th} thread(s): {t['samples_per_s']:,.1f} samples/s (round {rep + 1})",
                      flush=True)
    r["train_steps"] = train_steps
    if args.charlm_minutes:
        # Both sides at once, one thread each, so that they share the machine alike: on a machine
        # that other jobs load, two runs of 10 minutes one after the other see different loads.
        secs = int(60 * args.charlm_minutes)
        ck = os.path.join(outdir, f"{model}-timed.ckpt")
        nnc_p = subprocess.Popen(["timeout", "-s", "INT", str(secs), exe, "--epochs", "1000", "--threads", "1",
                                  "--verbose", "2", "--save", ck], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        tt = charlm_torch(args, "--model", model, 1, "--init", init, "--seconds", secs) if use_torch else None
        out = nnc_p.communicate()[0]
        ev = charlm_torch(args, "--model", model, 1, "--eval-ckpt", ck)
        lines = [l for l in out.splitlines() if l.startswith("epoch")]
        r["timed"] = {"minutes": args.charlm_minutes, "nnc_val_loss": ev["val_loss"], "nnc_epoch_lines": lines}
        print(f"{model}: nnc after {secs} s (1 thread): val_loss {ev['val_loss']:.4f} ({ev['val_bpc']:.3f} bits/char); "
              f"its epochs: {lines}", flush=True)
        if tt:
            r["timed"].update({"torch_val_loss": tt["val_loss"], "torch_steps": tt["steps"]})
            print(f"{model}: PyTorch after {secs} s (1 thread, {tt['steps']} steps): val_loss {tt['val_loss']:.4f} "
                  f"({tt['val_bpc']:.3f} bits/char)", flush=True)
    return r


def charlm_table(r, repeat):
    n1, n2 = r["nnc"][1]["samples_per_s"], r["nnc"][2]["samples_per_s"]
    print(f"\n{r['model']} (examples/{r['model']}.nn, batch 32, the first {r['limit']} windows): training samples/s")
    print(f"{'nnc 1t':>9} {'nnc 2t':>9} {'torch 1t':>9} {'torch 2t':>9} {'ratio':>6}")
    if r["torch"]:
        t1, t2 = r["torch"][1]["samples_per_s"], r["torch"][2]["samples_per_s"]
        print(f"{n1:>9,.1f} {n2:>9,.1f} {t1:>9,.1f} {t2:>9,.1f} {max(n1, n2) / max(t1, t2):>6.2f}")
    else:
        print(f"{n1:>9,.1f} {n2:>9,.1f} {'-':>9} {'-':>9} {'-':>6}")
    print(f"(ratio = nnc's best / PyTorch's best; each the best of {repeat} round(s))")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp,lenet")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, help="train on the first N training samples only (both sides)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "compiler", "nnc"))
    ap.add_argument("--json", help="also write all figures to this file")
    ap.add_argument("--no-infer", action="store_true", help="skip the inference measurements")
    ap.add_argument("--profile", action="store_true", help="per-kernel-class GFLOP/s and the machine peak")
    ap.add_argument("--charlm-limit", type=int, default=1000,
                    help="charlm: the speed runs train on the first N windows (1000: 950 training windows, 30 steps)")
    ap.add_argument("--charlm-steps", type=int, default=100, help="charlm: steps of the loss comparison")
    ap.add_argument("--charlm-minutes", type=float, default=0,
                    help="charlm: also train each side this many minutes (both at once, one thread each) and "
                         "compare the validation loss")
    ap.add_argument("--bf16", action="store_true",
                    help="also train each model with nnc --precision bf16 and PyTorch under bf16 autocast, and "
                         "report bf16 / float32 on each side (needs avx512bf16)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of every measurement, nnc and PyTorch taking turns; each side keeps its best "
                         "(default 3: this machine's speed varies by 10-30%% from minute to minute)")
    args = ap.parse_args()
    for model in args.models.split(","):
        if model not in MODELS:
            sys.exit(f"bench: unknown model '{model}' (known: {', '.join(MODELS)})")

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
            if model in SEQ_MODELS:  # a comparison of its own (no test accuracy, no inference)
                report[model] = dict(charlm_bench(args, exe, tmp, model), compile_s=ctime)
                if args.profile:
                    report[model]["profile"] = nnc_profile(args.nnc, model, tmp, 1, args.charlm_limit)
                continue
            r = {"compile_s": ctime, "nnc": {}, "torch": {}}
            train, infer = ("samples_per_s",), ("infer_batch64", "infer_batch1")
            # (label, run one thread count, where the best goes, figures, RSS rule, printout)
            jobs = [("nnc", lambda th: nnc_train(exe, args.epochs, th, args.limit), r["nnc"], train, max,
                     train_line)]
            if use_torch:
                jobs.append(("torch", lambda th: torch_train(model, args.epochs, th, args.limit), r["torch"], train,
                             min, train_line))
            if args.bf16:
                exe16, r["compile_bf16_s"] = nnc_compile(args.nnc, model, tmp, "bf16")
                r["nnc_bf16"] = {}
                jobs.append(("nnc bf16", lambda th: nnc_train(exe16, args.epochs, th, args.limit), r["nnc_bf16"],
                             train, max, train_line))
                if use_torch:
                    r["torch_bf16"] = {}
                    jobs.append(("torch bf16 autocast",
                                 lambda th: torch_train(model, args.epochs, th, args.limit, "bf16"), r["torch_bf16"],
                                 train, min, train_line))
            if not args.no_infer:
                ib = nnc_infer_build(args.nnc, model, tmp)
                r["nnc_infer"], r["torch_infer"] = {}, {}
                jobs.append(("nnc inference", lambda th: nnc_infer_run(ib, th), r["nnc_infer"], infer, max,
                             infer_line))
                if use_torch:
                    jobs.append(("torch inference", lambda th: torch_infer(model, th), r["torch_infer"], infer,
                                 max, infer_line))
            for rep in range(args.repeat):
                tag = f" (round {rep + 1}/{args.repeat})" if args.repeat > 1 else ""
                for label, run_one, best, keys, rss, line in jobs:
                    for th in (1, 2):
                        v = run_one(th)
                        best[th] = keep_best(best.get(th), v, keys, rss)
                        print(f"{model}: {label} {th} thread(s): {line(v)}{tag}", flush=True)
            if args.profile:
                r["profile"] = nnc_profile(args.nnc, model, tmp, args.epochs, args.limit)
            report[model] = r
        peak = machine_peak(tmp) if args.profile else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    generic = [m for m in report if m not in SEQ_MODELS]
    if generic:
        print()
        print(f"{'model':6} {'epochs':>6} {'compile':>8} {'nnc 1t':>10} {'nnc 2t':>10} {'torch best':>11} "
          f"{'ratio':>6} {'2t/1t':>6} {'acc nnc':>8} {'acc torch':>9} {'RSS nnc':>8} {'RSS torch':>9} {'RSS ratio':>9}")
    for model, r in report.items():
        if model in SEQ_MODELS:
            continue
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
    if generic:
        print("\nratio = nnc best samples/s / PyTorch best samples/s (training, each model's batch); "
              "RSS ratio = nnc peak RSS / PyTorch's smallest peak RSS")
    if generic and args.repeat > 1:
        print(f"(every figure: the best of {args.repeat} rounds, nnc and PyTorch taking turns; nnc's RSS: its largest)")
    if args.bf16 and generic:
        print(f"\n{'bf16':6} {'compile':>8} {'nnc 1t':>10} {'nnc 2t':>10} {'vs fp32':>8} {'acc':>7} {'fp32 acc':>8} "
              f"{'torch bf16':>11} {'vs fp32':>8} {'acc':>7} {'nnc/torch':>9}")
        for model in generic:
            r = report[model]
            b1, b2 = r["nnc_bf16"][1], r["nnc_bf16"][2]
            bb = max(b1["samples_per_s"], b2["samples_per_s"])
            fb = max(r["nnc"][1]["samples_per_s"], r["nnc"][2]["samples_per_s"])
            line = (f"{model:6} {r['compile_bf16_s']:>7.2f}s {b1['samples_per_s']:>10,.0f} {b2['samples_per_s']:>10,.0f}"
                    f" {bb / fb:>8.2f} {b2['test_acc']:>7.4f} {r['nnc'][2]['test_acc']:>8.4f}")
            if r.get("torch_bf16"):
                tb = max(r["torch_bf16"].values(), key=lambda t: t["samples_per_s"])
                tf = max(r["torch"].values(), key=lambda t: t["samples_per_s"])
                line += (f" {tb['samples_per_s']:>11,.0f} {tb['samples_per_s'] / tf['samples_per_s']:>8.2f}"
                         f" {tb['test_acc']:>7.4f} {bb / tb['samples_per_s']:>9.2f}")
            print(line)
        print("(vs fp32: best bf16 samples/s over best float32 samples/s of the same side; nnc/torch: the two bf16 "
              "bests; acc: test accuracy, nnc's with 2 threads)")
    for model in SEQ_MODELS:
        if model in report:
            charlm_table(report[model], args.repeat)
    if not args.no_infer and any(m not in SEQ_MODELS for m in report):
        print(f"\n{'inference':10} {'nnc b64':>10} {'torch b64':>10} {'ratio':>6} {'nnc b1':>9} {'torch b1':>9} {'ratio':>6}")
        for model in args.models.split(","):
            r = report[model]
            if model in SEQ_MODELS:
                continue
            n64 = max(v["infer_batch64"] for v in r["nnc_infer"].values())
            n1 = max(v["infer_batch1"] for v in r["nnc_infer"].values())
            if r.get("torch_infer"):
                t64 = max(v["infer_batch64"] for v in r["torch_infer"].values())
                t1 = max(v["infer_batch1"] for v in r["torch_infer"].values())
                print(f"{model:10} {n64:>10,.0f} {t64:>10,.0f} {n64 / t64:>6.2f} {n1:>9,.0f} {t1:>9,.0f} {n1 / t1:>6.2f}")
            else:
                print(f"{model:10} {n64:>10,.0f} {'-':>10} {'-':>6} {n1:>9,.0f} {'-':>9} {'-':>6}")
        print("(best of 1 and 2 threads on each side; nnc through the generated C API, PyTorch in inference_mode)")
    if args.profile:
        pk = peak
        print(f"\nmachine peak ({pk['isa']}): FMA {pk['fma_1t']:.0f} GFLOP/s on 1 thread, "
              f"{pk['fma_nt']:.0f} on {pk['threads']}; in-cache sgemm {pk['sgemm_1t']:.0f} / {pk['sgemm_nt']:.0f}")
        for model in args.models.split(","):
            print(f"{model}: GFLOP/s per kernel class, 1 thread (share of step time; % of 1-thread sgemm peak)")
            for k, v in report[model]["profile"].items():
                if v["gflops"] is not None and v["gflops"] >= 1:
                    print(f"    {k:12} {v['gflops']:7.1f} GFLOP/s  {v['share']:5.1f} % of time  "
                          f"{100 * v['gflops'] / pk['sgemm_1t']:5.1f} % of peak")
            prof = report[model]["profile"]  # the whole step: every class's FLOPs over every class's time
            ms = sum(v["ms"] for v in prof.values())
            gf = sum(v["ms"] * v["gflops"] for v in prof.values() if v["gflops"]) / ms if ms else 0.0
            print(f"    {'whole step':12} {gf:7.1f} GFLOP/s  100.0 % of time  {100 * gf / pk['sgemm_1t']:5.1f} % of peak")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"models": report, "peak": peak}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
