#!/usr/bin/env python3
"""A size sweep (issue #19): nnc against PyTorch on networks other than the examples.

Each point of the grid is a network trained on Fashion-MNIST: a dense stack (hidden size,
depth, batch) or a convolution stack (channels, kernel, stride, padding, pooling, 28x28 or
14x14 inputs).  For every point this script
  1. writes the network as a .nn file and as the layer list bench/sweep_torch.py builds in
     PyTorch (the same layers; see that file),
  2. compiles it with nnc and reads its FLOPs per sample from `nnc --stats`,
  3. trains the nnc binary (1 and 2 threads) and PyTorch (1 and 2 torch threads, with
     bench.py's OpenBLAS environment) for 2 epochs of the first L samples, L chosen so an
     epoch takes about a second, in --repeat rounds taking turns; each side keeps its best,
  4. with --baseline REV, also builds nnc at git revision REV in a temporary directory and
     trains the same points with it (new/old ratio: shows that no point got slower).
It prints and writes (bench/sweep.md, bench/sweep.svg, or --out PREFIX) a table: samples/s
of each side, nnc's GFLOP/s on 1 thread (FLOPs of --stats: forward + backward per sample and
the update per step), the share of the machine's 1-thread in-cache sgemm peak (bench/peak.c)
that is, nnc's 2-thread/1-thread speed-up, and nnc best / PyTorch best.

Usage: bench/sweep.py [--quick] [--repeat N] [--baseline REV] [--old-nnc PATH] [--only NAME,...] [--no-torch]
                      [--nnc PATH] [--out PREFIX]
The default grid takes about 10 minutes on a quiet 2-core machine; --quick runs 3 points.
Only the standard library is used, so any python3 runs it (PyTorch runs in /usr/bin/python3).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (torch_env, have_torch, machine_peak, run: the same set-up as bench.py)

ROOT = bench.ROOT
DATA = "/usr/share/datasets/fashion-mnist"


# ---- the grid ------------------------------------------------------------------------------

def dense_point(hidden, depth, batch):
    layers = [["dense", hidden, "relu"] for _ in range(depth)] + [["dense", 10, None]]
    return {"name": f"dense {hidden}x{depth} b{batch}", "kind": "dense", "layers": layers, "batch": batch}


def conv_point(ch, k, stride, pad, pool, size, batch=64):
    """Two convolutions of ch filters (the first with the stride), relu after each, a pooling
    of 2, flatten, dense(10); a 14x14 input is the 28x28 image average-pooled first."""
    p = (k - 1) // 2 if pad == "same" else 0
    layers = ([["avgpool", 2]] if size == 14 else []) + [
        ["conv", ch, k, stride, p], ["conv", ch, k, 1, p], [pool, 2], ["flatten"], ["dense", 10, None]]
    return {"name": f"conv {ch}c {k}x{k} s{stride} {pad} {pool[:3]} {size}px", "kind": "conv",
            "layers": layers, "batch": batch}


GRID = [
    dense_point(64, 1, 64), dense_point(128, 3, 16), dense_point(256, 2, 64), dense_point(512, 2, 128),
    dense_point(1024, 1, 64), dense_point(1024, 2, 16), dense_point(1024, 2, 64), dense_point(1024, 2, 256),
    dense_point(1024, 4, 512), dense_point(2048, 2, 128), dense_point(4096, 1, 64),
    conv_point(8, 3, 1, "same", "maxpool", 28), conv_point(32, 3, 1, "same", "maxpool", 28),
    conv_point(16, 5, 1, "valid", "avgpool", 28), conv_point(32, 1, 1, "valid", "maxpool", 28),
    conv_point(64, 5, 2, "same", "maxpool", 28), conv_point(64, 3, 1, "same", "avgpool", 14),
    conv_point(128, 3, 1, "same", "maxpool", 14), conv_point(32, 3, 2, "valid", "avgpool", 14),
    conv_point(128, 1, 1, "same", "avgpool", 14),
]
QUICK = [dense_point(1024, 2, 64), dense_point(256, 1, 32), conv_point(16, 3, 1, "same", "maxpool", 14)]


# ---- the network as a .nn file ---------------------------------------------------------------

def nn_text(pt, name):
    """The point's network in nnc's language (the same layers sweep_torch.py builds)."""
    conv = pt["kind"] == "conv"
    lines = [f"model {name}", "", "input  x : " + ("f32[1, 28, 28]" if conv else "f32[784]"), "label  y : class(10)", ""]
    expr = "x"
    for layer in pt["layers"]:
        kind = layer[0]
        if kind in ("avgpool", "maxpool"):
            expr += f" |> {kind}({layer[1]})"
        elif kind == "conv":
            f, k, s, p = layer[1:5]
            expr += f" |> conv2d({f}, {k}, stride: {s}, pad: {p}) |> relu"
        elif kind == "flatten":
            expr += " |> flatten"
        elif kind == "dense":
            expr += f" |> dense({layer[1]})" + (" |> relu" if layer[2] == "relu" else "")
    lines += [f"logits = {expr}", "", "loss      softmax_cross_entropy(logits, y)",
              "optimizer sgd(lr: 0.01, momentum: 0.9)", "", "train {",
              f'  data:   idx("{DATA}/train-images-idx3-ubyte.gz", "{DATA}/train-labels-idx1-ubyte.gz", scale: 1/255)',
              f'  test:   idx("{DATA}/t10k-images-idx3-ubyte.gz", "{DATA}/t10k-labels-idx1-ubyte.gz", scale: 1/255)',
              f"  batch:  {pt['batch']}", "  epochs: 2", "  seed:   1", "}", ""]
    return "\n".join(lines)


def nnc_build(nnc, pt, outdir, tag):
    """Compiles the point; returns (binary, FLOPs per sample of forward + backward, update FLOPs per step)."""
    name = "p" + re.sub(r"[^a-z0-9]", "", pt["name"])
    src = os.path.join(outdir, name + ".nn")
    with open(src, "w") as f:
        f.write(nn_text(pt, name))
    exe = os.path.join(outdir, f"{name}-{tag}")
    subprocess.run([nnc, src, "-o", exe], check=True)
    st = subprocess.run([nnc, src, "--stats", "-o", "-"], check=True, stdout=subprocess.PIPE, text=True).stdout
    m = re.search(r"forward ([0-9.e+]+), backward ([0-9.e+]+), update ([0-9.e+]+)", st)
    return exe, float(m.group(1)) + float(m.group(2)), float(m.group(3))


def nnc_train(exe, threads, limit):
    out, _ = bench.run([exe, "--epochs", "2", "--threads", str(threads), "--limit", str(limit), "--test-limit", "100"])
    sps = [float(x) for x in re.findall(r"([0-9.e+]+) samples/s", out)]
    if not sps:
        raise RuntimeError(f"no samples/s from {exe}:\n{out}")
    return max(sps)


def torch_train(pt, threads, limit):
    out, _ = bench.run([bench.TORCH_PY, os.path.join(ROOT, "bench", "sweep_torch.py"), "--layers",
                        json.dumps(pt["layers"]), "--batch", str(pt["batch"]), "--limit", str(limit),
                        "--threads", str(threads)], env=bench.torch_env())
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])["samples_per_s"]


def choose_limit(pt, flops):
    """Samples for an epoch of about a quarter of a second on either side (at ~20 GFLOP/s), at most
    12,800, whole batches (PyTorch's 2-thread runs on a busy machine are far slower)."""
    b = pt["batch"]
    n = int(5e9 / max(flops, 1.0))
    n = max(4 * b, min(12800, n))
    return n // b * b


def build_baseline(rev, tmp):
    """nnc at git revision rev, built (compiler and runtime only) in tmp; the path of its nnc."""
    src = os.path.join(tmp, "baseline")
    os.makedirs(src)
    arch = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", src], input=arch, check=True)
    bdir = os.path.join(src, "build")
    subprocess.run(["cmake", "-S", src, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DNNC_BUILD_TESTS=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", bdir, "-j2", "--target", "nnc", "nnrt"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(bdir, "compiler", "nnc")


# ---- the report ------------------------------------------------------------------------------

def fmt(side, th):
    """samples/s of one side at th threads, or - (not run)"""
    return f"{side[th]:>9,.0f}" if th in side else f"{'-':>9}"


def table(rows, peak, baseline):
    head = ["point", "batch", "MFLOP/sample", "nnc 1t", "nnc 2t", "torch 1t", "torch 2t", "nnc GFLOP/s 1t",
            "1t peak", "% of 1t peak", "2t/1t", "nnc/torch"]
    if baseline:
        head.append(f"new/old ({baseline})")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], str(r["batch"]), f"{r['flops'] / 1e6:.2f}", fmt(r["nnc"], 1), fmt(r["nnc"], 2)]
        cells += [fmt(r["torch"], t) for t in (1, 2)]
        cells += [f"{r['gflops']:.1f}", f"{r['peak']:.1f}", f"{r['peak_pct']:.0f} %",
                  f"{r['nnc'][2] / r['nnc'][1]:.2f}" if 2 in r["nnc"] else "-",
                  f"{r['ratio']:.2f}" if r["ratio"] else "-"]
        if baseline:
            cells.append(f"{r['vs_old']:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(f"samples/s, best of each side's rounds; GFLOP/s: nnc on 1 thread (FLOPs of nnc --stats); 1t peak: "
               f"the 1-thread in-cache sgemm of bench/peak.c ({peak['isa']}), measured again just before each "
               f"point; nnc/torch: the best of nnc's thread counts over PyTorch's best.")
    return "\n".join(out) + "\n"


def svg(rows, path):
    """Two bar charts, one bar per point: nnc/PyTorch (line at 2) and % of 1-thread peak (line at 70)."""
    left, top, ph = 50, 30, 170
    w, h = max(left + 26 * len(rows) + 170, 420), top + 2 * ph + 50 + 200  # room for the slanted names
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             f'font-size="10">', f'<rect width="{w}" height="{h}" fill="white"/>']

    def panel(y0, key, vmax, target, title, color):
        parts.append(f'<text x="{left}" y="{y0 - 8}" font-size="12">{title}</text>')
        parts.append(f'<line x1="{left}" y1="{y0 + ph}" x2="{left + 26 * len(rows)}" y2="{y0 + ph}" stroke="black"/>')
        for t in range(5):
            v = vmax * t / 4
            y = y0 + ph - ph * t / 4
            parts.append(f'<text x="{left - 4}" y="{y + 3}" text-anchor="end">{v:g}</text>')
            parts.append(f'<line x1="{left}" y1="{y}" x2="{left + 26 * len(rows)}" y2="{y}" stroke="#ddd"/>')
        for i, r in enumerate(rows):
            v = r.get(key) or 0
            bh = ph * min(v, vmax) / vmax
            parts.append(f'<rect x="{left + 26 * i + 4}" y="{y0 + ph - bh:.1f}" width="18" height="{bh:.1f}" '
                         f'fill="{color}"><title>{r["name"]}: {v:.2f}</title></rect>')
        yt = y0 + ph - ph * target / vmax
        parts.append(f'<line x1="{left}" y1="{yt}" x2="{left + 26 * len(rows)}" y2="{yt}" stroke="red" '
                     f'stroke-dasharray="4 3"/>')

    vr = max([4.0] + [r["ratio"] or 0 for r in rows])
    panel(top, "ratio", vr, 2.0, "nnc / PyTorch, training samples/s (best of 1 and 2 threads each); red: 2", "#3b6fb6")
    panel(top + ph + 40, "peak_pct", 100.0, 70.0, "nnc on 1 thread, % of the 1-thread sgemm peak; red: 70 %",
          "#e08a2c")
    y0 = top + 2 * ph + 50
    for i, r in enumerate(rows):
        x = left + 26 * i + 13
        parts.append(f'<text transform="translate({x},{y0}) rotate(60)">{r["name"]}'
                     + ("" if r["kind"] == "dense" else f' b{r["batch"]}') + '</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 points, for a smoke test")
    ap.add_argument("--only", help="comma-separated substrings: the points whose name holds one of them")
    ap.add_argument("--repeat", type=int, default=2, help="rounds per point, sides taking turns (default 2)")
    ap.add_argument("--baseline", metavar="REV", help="also run nnc built at git revision REV")
    ap.add_argument("--old-nnc", metavar="PATH", help="like --baseline, with an nnc already built (named REV by "
                    "--baseline if given)")
    ap.add_argument("--threads", default="1,2", help="thread counts each side runs (default 1,2; 1 alone on a "
                    "machine so busy that PyTorch's 2-thread runs take minutes)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "compiler", "nnc"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "sweep"), help="writes OUT.md, OUT.svg, OUT.json")
    args = ap.parse_args()
    points = QUICK if args.quick else GRID
    threads = [int(t) for t in args.threads.split(",")]
    if 1 not in threads:
        sys.exit("sweep: --threads must include 1 (GFLOP/s and % of peak are nnc's on 1 thread)")
    if args.only:
        keys = args.only.split(",")
        points = [p for p in points if any(k in p["name"] for k in keys)]
    if not os.path.exists(args.nnc):
        sys.exit(f"sweep: {args.nnc} not found; build first (bash scripts/build.sh)")
    use_torch = not args.no_torch and bench.have_torch()
    tmp = tempfile.mkdtemp(prefix="nnc-sweep-")
    rows = []
    try:
        old_nnc = args.old_nnc or (build_baseline(args.baseline, tmp) if args.baseline else None)
        args.baseline = args.baseline or ("old" if old_nnc else None)
        peak = bench.machine_peak(tmp)
        print(f"peak ({peak['isa']}): in-cache sgemm {peak['sgemm_1t']:.1f} GFLOP/s on 1 thread", flush=True)
        for pt in points:
            exe, flops, upd = nnc_build(args.nnc, pt, tmp, "new")
            old = nnc_build(old_nnc, pt, tmp, "old")[0] if old_nnc else None
            limit = choose_limit(pt, flops)
            # the peak again beside each point: a busy machine's speed drifts from minute to minute
            pk = json.loads(subprocess.run([os.path.join(tmp, "peak"), "1"], check=True, stdout=subprocess.PIPE,
                                           text=True).stdout.strip().splitlines()[-1])["sgemm_1t"]
            r = dict(pt, flops=flops, limit=limit, peak=pk, nnc={}, torch={}, old={})
            for _ in range(args.repeat):
                for th in threads:
                    r["nnc"][th] = max(r["nnc"].get(th, 0), nnc_train(exe, th, limit))
                    if old:
                        r["old"][th] = max(r["old"].get(th, 0), nnc_train(old, th, limit))
                    if use_torch:
                        r["torch"][th] = max(r["torch"].get(th, 0), torch_train(pt, th, limit))
            best = max(r["nnc"].values())
            r["gflops"] = r["nnc"][1] * (flops + upd / pt["batch"]) / 1e9
            r["peak_pct"] = 100 * r["gflops"] / pk
            r["ratio"] = best / max(r["torch"].values()) if r["torch"] else None
            r["vs_old"] = best / max(r["old"].values()) if r["old"] else None
            rows.append(r)
            print(f"{pt['name']:34} nnc {fmt(r['nnc'], 1)} {fmt(r['nnc'], 2)}  torch "
                  + (f"{fmt(r['torch'], 1)} {fmt(r['torch'], 2)}  ratio {r['ratio']:.2f}" if r["torch"] else "-")
                  + f"  {r['gflops']:.1f} GFLOP/s {r['peak_pct']:.0f} % of peak"
                  + (f"  new/old {r['vs_old']:.2f}" if old else ""), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    md = table(rows, peak, args.baseline)
    print()
    print(md)
    with open(args.out + ".md", "w") as f:
        f.write(md)
    with open(args.out + ".json", "w") as f:
        json.dump({"peak": peak, "points": rows}, f, indent=1)
    svg(rows, args.out + ".svg")
    print(f"wrote {args.out}.md, {args.out}.svg, {args.out}.json")


if __name__ == "__main__":
    main()
