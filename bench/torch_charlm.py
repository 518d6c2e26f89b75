#!/usr/bin/python3
"""PyTorch twin of examples/charlm.nn and examples/charlstm.nn, for bench.py's `charlm` and
`charlstm` comparisons (issue #16).

--model charlstm: the character LSTM (embedding 64, one torch LSTM of 256 units run by the
same function nn.LSTM calls, a dense to the 256 bytes), plain Adam (lr 2e-3, betas 0.9/0.999,
eps 1e-8, no weight decay), the same windows and order as below.  nnc's lstm parameters map to
torch's as weight_ih_l0 = lstm1.weight_ih^T, weight_hh_l0 = lstm1.weight_hh^T and the biases as
they are (docs/language.md, "Recurrent layers").

The same decoder-only transformer (4 pre-norm blocks, d 128, 4 heads, causal attention, a GELU
MLP of 512, context 64, bytes as tokens), started from nnc's own initial weights (a checkpoint
the compiled binary wrote with `--epochs 0 --save FILE`: docs/checkpoint.md), trained on the
same windows of the fortunes corpus in the same order with the same optimizer (AdamW, lr 1e-3,
betas 0.9/0.999, eps 1e-8, weight decay 0.01 on the tensors of rank >= 2, as nnc's
ir_param_decays), so that its losses can be compared step by step with nnc's.

How the order is reproduced (runtime/seqdata.c, validation.c, train.c, rng.c):
  * the corpus: a directory's regular files (no dot files, no `.dat`, no symbolic links) in
    byte order of their names, concatenated; window i is bytes [iT, iT + T), its label the
    bytes one further on; (len - 1) / T windows, the first --limit of them;
  * the validation split: round(fraction * n) windows held out, the first ones of a
    Fisher-Yates shuffle of 0..n-1 drawn from xoshiro256** seeded with seed ^ "valid";
    the others, in order, are the training windows;
  * every epoch: the training windows shuffled (Fisher-Yates, nnrt_rng_below's rejection)
    by the run's generator, whose state before the first epoch's shuffle is in the
    checkpoint (after the parameter initialisation drew from it);
  * batches of 32 in that order, the last one partial.
The layout of the parameters is nnc's (a dense weight is [in, out]: y = x W + b).

Modes:
  --steps N --log-losses     print the loss of every step of the first N (JSON), for the
                             step-by-step comparison (--double: in float64, the rounding
                             reference)
  --steps N                  time N training steps (samples/s of the loop)
  --seconds S                train for S seconds of the loop, then the validation loss
  --eval-ckpt FILE           the validation loss of the parameters in an nnc checkpoint
Depends only on torch, numpy and the standard library.
"""

import argparse
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

M64 = (1 << 64) - 1
FORWARD = None  # the model's forward function (MODELS, set by main)
T, V, D, HEADS, LAYERS, FF, BATCH = 64, 256, 128, 4, 4, 512, 32
LR, BETAS, EPS, WD, LN_EPS = 1e-3, (0.9, 0.999), 1e-8, 0.01, 1e-5
CORPUS = "/usr/share/games/fortunes"


# ---- nnc's generator (runtime/rng.c) ----

def _splitmix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


class Xoshiro:
    def __init__(self, seed=None, state=None):
        if state is not None:
            self.s = list(state)
        else:
            x, self.s = seed & M64, []
            for _ in range(4):
                x, z = _splitmix(x)
                self.s.append(z)

    def next(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        threshold = ((1 << 64) - n) % n
        while True:
            x = self.next()
            if x >= threshold:
                return x % n

    def shuffle(self, idx):
        for i in range(len(idx) - 1, 0, -1):
            j = self.below(i + 1)
            idx[i], idx[j] = idx[j], idx[i]


# ---- the checkpoint (docs/checkpoint.md) ----

def read_checkpoint(path):
    """(parameters by name as float32 arrays in nnc's layout, the rng state, the step)."""
    b = open(path, "rb").read()
    if b[:8] != b"NNRTCKPT":
        sys.exit(f"{path}: not an nnc checkpoint")
    version, = struct.unpack_from("<I", b, 8)
    n_params, = struct.unpack_from("<I", b, 36)
    param_floats, opt_floats = struct.unpack_from("<qq", b, 40)
    step, = struct.unpack_from("<q", b, 64)
    rng = struct.unpack_from("<4Q", b, 72)
    off = 104
    n, = struct.unpack_from("<I", b, off)
    off += 4 + n
    table = []
    for _ in range(n_params):
        n, = struct.unpack_from("<I", b, off)
        name = b[off + 4:off + 4 + n].decode()
        off += 4 + n
        rank, = struct.unpack_from("<I", b, off)
        dims = struct.unpack_from(f"<{rank}q", b, off + 4)
        off += 4 + 8 * rank
        poff, size = struct.unpack_from("<qq", b, off)
        off += 16
        table.append((name, dims, poff, size))
    state_floats = 0
    if version >= 2:
        n_state, state_floats = struct.unpack_from("<Iq", b, off)
        off += 12
        for _ in range(n_state):
            n, = struct.unpack_from("<I", b, off)
            off += 4 + n
            rank, = struct.unpack_from("<I", b, off)
            off += 4 + 8 * rank + 16
    if version >= 3:
        es, = struct.unpack_from("<I", b, off)
        off += 4 + 24
    params = np.frombuffer(b, dtype="<f4", count=param_floats, offset=off)
    return {name: params[p:p + s].reshape(dims).copy() for name, dims, p, s in table}, rng, step


# ---- the data (runtime/seqdata.c, validation.c) ----

def read_corpus(path):
    if not os.path.isdir(path):
        return open(path, "rb").read()
    names = []
    for e in os.listdir(path):
        if e.startswith(".") or (len(e) > 4 and e.endswith(".dat")):
            continue
        full = os.path.join(path, e)
        if os.path.isfile(full) and not os.path.islink(full):
            names.append(full)
    return b"".join(open(f, "rb").read() for f in sorted(names, key=os.fsencode))


def windows(path, limit):
    buf = np.frombuffer(read_corpus(path), dtype=np.uint8)
    n = (len(buf) - 1) // T
    if limit:
        n = min(n, limit)
    x = buf[:n * T].reshape(n, T).astype(np.int64)
    y = buf[1:n * T + 1].reshape(n, T).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def val_split(n, fraction, seed):
    # nnrt_val_split: llround(fraction * n) of a float fraction, at least 1
    nv = max(1, int(np.floor(float(np.float32(fraction)) * n + 0.5)))
    order = list(range(n))
    Xoshiro(seed=seed ^ 0x76616C6964).shuffle(order)
    held = np.zeros(n, dtype=bool)
    held[order[:nv]] = True
    return np.nonzero(~held)[0].tolist(), np.nonzero(held)[0]


# ---- the model ----

def decays(name, p):
    return p.dim() >= 2


def forward(P, x, causal_mask):
    B = x.shape[0]
    k = D // HEADS
    h = F.embedding(x, P["embedding1.weight"]) + P["positional1.weight"]
    for l in range(1, LAYERS + 1):
        pre = f"decoder{l}."
        a = F.layer_norm(h, (D,), P[pre + "layernorm1.weight"], P[pre + "layernorm1.bias"], LN_EPS).view(-1, D)
        att = pre + "attention1."
        q, kk, v = (torch.addmm(P[att + w + ".bias"], a, P[att + w + ".weight"]).view(B, T, HEADS, k).transpose(1, 2)
                    for w in ("q", "k", "v"))
        s = torch.matmul(q, kk.transpose(-1, -2)) * (1.0 / k ** 0.5)
        p = torch.softmax(s.masked_fill(causal_mask, float("-inf")), dim=-1)
        ctx = torch.matmul(p, v).transpose(1, 2).reshape(-1, D)
        h = h + torch.addmm(P[att + "out.bias"], ctx, P[att + "out.weight"]).view(B, T, D)
        m = F.layer_norm(h, (D,), P[pre + "layernorm2.weight"], P[pre + "layernorm2.bias"], LN_EPS).view(-1, D)
        m = F.gelu(torch.addmm(P[pre + "dense1.bias"], m, P[pre + "dense1.weight"]), approximate="tanh")
        h = h + torch.addmm(P[pre + "dense2.bias"], m, P[pre + "dense2.weight"]).view(B, T, D)
    h = F.layer_norm(h, (D,), P["layernorm1.weight"], P["layernorm1.bias"], LN_EPS).view(-1, D)
    return torch.addmm(P["dense1.bias"], h, P["dense1.weight"])


def forward_lstm(P, x, causal_mask):
    """examples/charlstm.nn: nnc's parameter layout, the LSTM by torch's own kernel."""
    del causal_mask
    B = x.shape[0]
    e = F.embedding(x, P["embedding1.weight"])
    H = P["lstm1.weight_hh"].shape[0]
    z = e.new_zeros(1, B, H)
    w = [P["lstm1.weight_ih"].t(), P["lstm1.weight_hh"].t(), P["lstm1.bias_ih"], P["lstm1.bias_hh"]]
    # (input, (h0, c0), weights, has_biases, layers, dropout, train, bidirectional, batch_first)
    h = torch._VF.lstm(e, (z, z), w, True, 1, 0.0, True, False, True)[0].reshape(-1, H)
    return torch.addmm(P["dense1.bias"], h, P["dense1.weight"])


MODELS = {  # forward, optimizer, learning rate, weight decay (AdamW) or None (Adam)
    "charlm": (forward, LR, WD),
    "charlstm": (forward_lstm, 2e-3, None),
}


@torch.no_grad()
def val_loss(P, x, y, ids, mask, batch=256):
    total = 0.0
    for s in range(0, len(ids), batch):
        b = torch.as_tensor(ids[s:s + batch])
        logits = FORWARD(P, x[b], mask)
        # nnc: the mean over a sample's positions, then over the samples
        per = F.cross_entropy(logits, y[b].reshape(-1), reduction="none").view(len(b), T).mean(1)
        total += per.double().sum().item()
    return total / len(ids)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="charlm")
    ap.add_argument("--init", help="nnc checkpoint with the initial parameters and generator state")
    ap.add_argument("--eval-ckpt", help="print the validation loss of this nnc checkpoint's parameters")
    ap.add_argument("--corpus", default=CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="the first N windows only (nnc's --limit)")
    ap.add_argument("--validation", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="train N steps (0: --seconds, or one epoch)")
    ap.add_argument("--seconds", type=float, default=0, help="train for S seconds, then the validation loss")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-losses", action="store_true", help="record every step's loss")
    ap.add_argument("--double", action="store_true", help="in float64 (the rounding reference)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    global FORWARD
    FORWARD, lr, wd = MODELS[args.model]
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.double else torch.float32
    log = sys.stderr if args.json else sys.stdout

    x, y = windows(args.corpus, args.limit)
    train_ids, val_ids = val_split(x.shape[0], args.validation, args.seed)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    ckpt = args.eval_ckpt or args.init
    if not ckpt:
        ap.error("--init or --eval-ckpt: the parameters come from an nnc checkpoint")
    values, rng_state, _ = read_checkpoint(ckpt)
    P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in values.items()}
    if args.eval_ckpt:
        vl = val_loss(P, x, y, val_ids, mask)
        print(json.dumps({"val_loss": vl, "val_bpc": vl / np.log(2), "val_windows": len(val_ids)}), flush=True)
        return 0

    if wd is None:
        opt = torch.optim.Adam(list(P.values()), lr=lr, betas=BETAS, eps=EPS)
    else:
        groups = [{"params": [p for k, p in P.items() if decays(k, p)], "weight_decay": wd},
                  {"params": [p for k, p in P.items() if not decays(k, p)], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS)
    rng = Xoshiro(state=rng_state)
    losses, steps, seen, elapsed, cpu, epoch = [], 0, 0, 0.0, 0.0, 0
    limit_steps = args.steps or (None if args.seconds else (len(train_ids) + BATCH - 1) // BATCH)
    done = False
    while not done:
        epoch += 1
        perm = list(train_ids)
        rng.shuffle(perm)
        perm = torch.as_tensor(perm)
        t0, c0 = time.perf_counter(), time.process_time()
        for b in range(0, len(perm), BATCH):
            idx = perm[b:b + BATCH]
            xb, yb = x[idx], y[idx]
            logits = FORWARD(P, xb, mask)
            loss = F.cross_entropy(logits, yb.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if args.log_losses:
                losses.append(loss.item())
            steps += 1
            seen += len(idx)
            if (limit_steps and steps >= limit_steps) or (args.seconds and time.perf_counter() - t0 + elapsed >= args.seconds):
                done = True
                break
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
    res = {"impl": "pytorch", "torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "dtype": str(dtype), "steps": steps, "samples": seen, "epochs": epoch, "seconds": elapsed,
           "samples_per_s": seen / elapsed, "cpu_seconds": cpu, "train_windows": len(train_ids), "val_windows": len(val_ids)}
    if args.log_losses:
        res["losses"] = losses
    if args.seconds:
        res["val_loss"] = val_loss(P, x, y, val_ids, mask)
        res["val_bpc"] = res["val_loss"] / np.log(2)
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"torch {torch.__version__}, {res['threads']} thread(s): {steps} steps, {res['samples_per_s']:.1f} samples/s"
          + (f", val_loss {res['val_loss']:.4f}" if "val_loss" in res else ""), file=log, flush=True)
    if args.json:
        print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
