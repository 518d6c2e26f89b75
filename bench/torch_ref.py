#!/usr/bin/python3
"""PyTorch reference for nnc's side-by-side benchmark.

Trains the same networks nnc trains on Fashion-MNIST, with the same
settings (architecture, initialisation, loss, optimiser, batch size,
shuffling, data scaling), and reports per-epoch loss/accuracy, training
throughput, peak RSS and, with --infer, inference throughput.

Depends only on torch, numpy and the Python standard library.  Run it with
Debian's interpreter and python3-torch:

    OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 \
        /usr/bin/python3 bench/torch_ref.py --model mlp --epochs 1 --threads 1

Why the environment variables: PyTorch's dense layers run on Debian's
OpenBLAS (0.3.21), whose kernel choice can be forced by OPENBLAS_CORETYPE.
The environment on this machine presets OPENBLAS_CORETYPE=Haswell (AVX2
kernels), which makes the MLP markedly slower than OpenBLAS's AVX-512
SkylakeX kernels on this CPU (an AMD EPYC with AVX-512); setting
OPENBLAS_CORETYPE=SkylakeX explicitly overrides whatever is inherited.
OPENBLAS_NUM_THREADS=1 keeps OpenBLAS's own thread pool from fighting
PyTorch's OpenMP pool.  The bench driver sets both in this command's
environment.  The script itself tries nothing fancy (no compilation, no
custom kernels, no channels-last tricks): PyTorch's thread count is set
from --threads only, and the bench driver runs it once with --threads 1
and once with --threads 2 and keeps the better of the two, so PyTorch is
shown at its best on this 2-core machine.

Fairness notes:
  * The dataset is parsed and converted once, before timing, into a single
    float32 tensor (already scaled by 1/255) and an int64 label tensor;
    each batch is taken by indexing that tensor with a slice of the
    epoch's permutation.
  * Training throughput times only the training loop of an epoch
    (shuffle + batch gathering + forward + backward + optimiser step);
    the test-set evaluation after each epoch is not timed.
  * Train loss and train accuracy are running figures over the epoch,
    computed from the forward pass of each step (before that step's
    update), weighted by batch size; the last, partial batch is kept.
  * Inference (--infer) runs forward-only under torch.inference_mode over
    the test set, at batch 64 and at batch 1, after a short untimed
    warm-up.
"""

import argparse
import gzip
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
BATCH = 64     # the default; BATCHES below gives each model's own
LR = 0.05
MOMENTUM = 0.9

# IDX element types (third byte of the magic number), all big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Parse a (gzip-compressed) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    dtype = _IDX_DTYPES[type_code]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(dims) if dims else 1
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"{path}: expected {count * dtype.itemsize} data bytes for shape {dims}, "
            f"found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def load_split(data_dir, prefix, limit=None):
    """Return (x float32 tensor [N,784] scaled by 1/255, y int64 tensor [N])."""
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x *= np.float32(1.0 / 255.0)        # in place: no second float copy
    y = labels.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def _fans(weight):
    """(fan_in, fan_out) with nnc's convention.

    Dense: fan_in = in features, fan_out = out features.
    Conv:  fan_in = in_ch*kh*kw, fan_out = out_ch*kh*kw.
    PyTorch stores Linear weights as [out,in] and conv weights as
    [out_ch,in_ch,kh,kw]; the fans do not depend on that layout.
    """
    out_ch, in_ch = weight.shape[0], weight.shape[1]
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return in_ch * receptive, out_ch * receptive


def he_uniform_(weight):
    fan_in, _ = _fans(weight)
    bound = math.sqrt(6.0 / fan_in)
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def glorot_uniform_(weight):
    fan_in, fan_out = _fans(weight)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def build_mlp():
    fc1, fc2 = nn.Linear(784, 128), nn.Linear(128, 10)
    he_uniform_(fc1.weight)       # followed by relu
    glorot_uniform_(fc2.weight)   # output layer
    for layer in (fc1, fc2):
        nn.init.zeros_(layer.bias)
    return nn.Sequential(fc1, nn.ReLU(), fc2)


def build_lenet():
    conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
    conv2 = nn.Conv2d(6, 16, kernel_size=5)
    fc1, fc2, fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)
    for layer in (conv1, conv2, fc1, fc2, fc3):
        glorot_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(
        conv1, nn.Tanh(), nn.AvgPool2d(2),
        conv2, nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(),
        fc1, nn.Tanh(),
        fc2, nn.Tanh(),
        fc3,
    )


class Residual(nn.Module):
    """residual(f, s) of issue #12: relu(body(x) + shortcut(x)), body = conv3x3(f, stride s,
    pad 1) -> [bn] -> relu -> conv3x3(f, pad 1) -> [bn]; shortcut = x when s == 1 and the
    channels agree, else conv1x1(f, stride s) -> [bn].  Convolutions without bias; the
    batchnorms only with bn=True (the *_plain proxies leave them out, as
    bench/models/resnet_plain.nn does)."""

    def __init__(self, cin, f, stride, bn):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(f)) if bn else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(cin, f, 3, stride=stride, padding=1, bias=False), norm(), nn.ReLU(),
            nn.Conv2d(f, f, 3, padding=1, bias=False), norm())
        self.short = (nn.Identity() if stride == 1 and cin == f else
                      nn.Sequential(nn.Conv2d(cin, f, 1, stride=stride, bias=False), norm()))

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


def build_resnet(bn=True):
    """examples/resnet.nn (issue #12): stem conv3x3(16) -> bn -> relu [16,28,28]; residual(16, 1),
    residual(32, 2) [32,14,14], residual(64, 2) [64,7,7]; global average pool; dense(10).
    PyTorch's default initialisation."""
    norm = (lambda: nn.BatchNorm2d(16)) if bn else nn.Identity
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), norm(), nn.ReLU(),
        Residual(16, 16, 1, bn), Residual(16, 32, 2, bn), Residual(32, 64, 2, bn),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def build_vgg(bn=True):
    """examples/vgg.nn (issue #12): [conv3x3(16, same) -> bn -> relu] x 2, maxpool 2 [16,14,14];
    [conv3x3(32, same) -> bn -> relu] x 2, maxpool 2 [32,7,7]; flatten -> dropout(0.3) ->
    dense(128) -> relu -> dropout(0.3) -> dense(10).  bn=False (vgg_plain, as
    bench/models/vgg_plain.nn) leaves out the batchnorms and the dropouts.  Convolutions
    without bias before a batchnorm, with bias in vgg_plain; PyTorch's default initialisation."""
    def block(cin, f):
        # a convolution before a batchnorm has no bias (as in examples/vgg.nn: beta takes its place)
        return [nn.Conv2d(cin, f, 3, padding=1, bias=not bn)] + ([nn.BatchNorm2d(f)] if bn else []) + [nn.ReLU()]
    drop = (lambda: [nn.Dropout(0.3)]) if bn else (lambda: [])
    return nn.Sequential(
        *block(1, 16), *block(16, 16), nn.MaxPool2d(2),
        *block(16, 32), *block(32, 32), nn.MaxPool2d(2),
        nn.Flatten(), *drop(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), *drop(), nn.Linear(128, 10))


MODELS = {"mlp": build_mlp, "lenet": build_lenet,
          "resnet": build_resnet, "resnet_plain": lambda: build_resnet(bn=False),
          "vgg": build_vgg, "vgg_plain": lambda: build_vgg(bn=False)}
# Per-sample input shape each model takes; the dataset is reshaped (a view)
# once, before timing.
INPUT_SHAPES = {"mlp": (784,)}
# Training batch of each model (the .nn file's `batch:`); 64 unless listed.
BATCHES = {"resnet": 64, "resnet_plain": 128, "vgg": 128, "vgg_plain": 128}
# Nesterov momentum where the .nn file asks for it (examples/resnet.nn).  Not reproduced here,
# as they hardly change the time of a step: weight decay, the schedule and warmup, and
# resnet.nn's flip augmentation (which only adds work on nnc's side).
NESTEROV = {"resnet"}


def train_epoch(model, opt, x, y, gen, batch, autocast=False):
    """One epoch; returns (mean loss, accuracy, seconds of training loop).  With autocast, the
    forward pass runs under torch.cpu.amp.autocast(dtype=torch.bfloat16): products and
    convolutions in bf16, float32 master weights (PyTorch's CPU mixed precision)."""
    n = x.shape[0]
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=gen)
    for start in range(0, n, batch):
        idx = perm[start:start + batch]          # last partial batch kept
        xb, yb = x[idx], y[idx]
        with torch.cpu.amp.autocast(enabled=autocast, dtype=torch.bfloat16):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)   # mean over the batch (float32 under autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            loss_sum += loss.detach().double() * idx.shape[0]
            correct += (logits.argmax(1) == yb).sum()
    seconds = time.perf_counter() - t0
    return loss_sum.item() / n, correct.item() / n, seconds


@torch.inference_mode()
def evaluate(model, x, y, batch=1000, autocast=False):
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch):
        with torch.cpu.amp.autocast(enabled=autocast, dtype=torch.bfloat16):
            out = model(x[start:start + batch])
        correct += (out.argmax(1) == y[start:start + batch]).sum().item()
    return correct / x.shape[0]


@torch.inference_mode()
def time_inference(model, x, batch):
    """Forward-only throughput (samples/s) over all of x at the given batch size."""
    model.eval()
    n = x.shape[0]
    for start in range(0, min(n, 20 * batch), batch):   # untimed warm-up
        model(x[start:start + batch])
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        out = model(x[start:start + batch])
        out.argmax(1)        # the prediction, as a user of inference would take it
    seconds = time.perf_counter() - t0
    return n / seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="mlp")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (the bench driver tries 1 and 2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training samples")
    p.add_argument("--infer", action="store_true",
                   help="also time inference at batch 64 and batch 1 over the test set")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line of results on stdout (progress goes to stderr)")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none",
                   help="bf16: train and evaluate under torch.cpu.amp.autocast(dtype=torch.bfloat16)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")

    log = sys.stderr if args.json else sys.stdout

    def say(msg):
        print(msg, file=log, flush=True)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)                 # initialisation
    gen = torch.Generator().manual_seed(args.seed)   # shuffling

    x_train, y_train = load_split(args.data_dir, "train", args.limit)
    x_test, y_test = load_split(args.data_dir, "t10k")
    shape = INPUT_SHAPES.get(args.model, (1, 28, 28))
    batch = BATCHES.get(args.model, BATCH)
    x_train = x_train.view(-1, *shape)
    x_test = x_test.view(-1, *shape)

    model = MODELS[args.model]()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=args.model in NESTEROV)

    say(f"torch {torch.__version__}, threads {torch.get_num_threads()}, model {args.model}, "
        f"train {x_train.shape[0]}, test {x_test.shape[0]}, batch {batch}, seed {args.seed}")

    epochs = []
    for epoch in range(1, args.epochs + 1):
        ac = args.autocast == "bf16"
        loss, acc, seconds = train_epoch(model, opt, x_train, y_train, gen, batch, ac)
        test_acc = evaluate(model, x_test, y_test, autocast=ac)
        sps = x_train.shape[0] / seconds
        epochs.append({"epoch": epoch, "train_loss": loss, "train_acc": acc,
                       "test_acc": test_acc, "train_seconds": seconds,
                       "train_samples_per_s": sps})
        say(f"epoch {epoch}: train loss {loss:.4f}  train acc {acc:.4f}  "
            f"test acc {test_acc:.4f}  {sps:,.0f} samples/s ({seconds:.2f} s)")

    result = {
        "impl": "pytorch",
        "torch_version": torch.__version__,
        "model": args.model,
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "train_samples": x_train.shape[0],
        "test_samples": x_test.shape[0],
        "batch": batch,
        "epochs": epochs,
    }

    if args.infer:
        inf64 = time_inference(model, x_test, 64)
        inf1 = time_inference(model, x_test, 1)
        result["infer_samples_per_s_batch64"] = inf64
        result["infer_samples_per_s_batch1"] = inf1
        say(f"inference: batch 64 {inf64:,.0f} samples/s, batch 1 {inf1:,.0f} samples/s")

    # ru_maxrss is in KiB on Linux.
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result["peak_rss_mib"] = peak_rss_mib
    say(f"peak RSS {peak_rss_mib:.1f} MiB")

    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
