#!/usr/bin/env python3
"""The PyTorch side of bench/sweep.py: trains the network of one sweep point.

The network is given as the JSON layer list sweep.py writes (the same list it
turns into the .nn file), so both sides train the same layers:
  ["avgpool", 2]            average pooling, window = stride = 2 (28x28 -> 14x14 inputs)
  ["dense", units, act]     a dense layer, act "relu" or null
  ["conv", f, k, s, p]      a convolution, f filters of k x k, stride s, zero padding p, then relu
  ["maxpool", 2]            max pooling
  ["flatten"]
Data, loss, optimiser, batches and the timed loop are torch_ref.py's (one
shuffled epoch of the first --limit Fashion-MNIST samples, SGD with momentum);
PyTorch's default initialisation.  Prints one JSON line: the best epoch's
training samples/s.  Run with /usr/bin/python3 and the environment of
bench.py's torch_env() (OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS=1).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from torch import nn  # noqa: E402

import torch_ref  # noqa: E402


def build(layers):
    """nn.Sequential of the layer list, on [1, 28, 28] images."""
    mods, c, h, w, flat = [], 1, 28, 28, None
    for layer in layers:
        kind = layer[0]
        if kind in ("avgpool", "maxpool"):
            k = layer[1]
            mods.append(nn.AvgPool2d(k) if kind == "avgpool" else nn.MaxPool2d(k))
            h, w = (h - k) // k + 1, (w - k) // k + 1
        elif kind == "conv":
            f, k, s, p = layer[1:5]
            mods += [nn.Conv2d(c, f, k, stride=s, padding=p), nn.ReLU()]
            c, h, w = f, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "flatten":
            mods.append(nn.Flatten())
            flat = c * h * w
        elif kind == "dense":
            if flat is None:  # a dense stack on the raw image
                mods.append(nn.Flatten())
                flat = c * h * w
            mods.append(nn.Linear(flat, layer[1]))
            flat = layer[1]
            if layer[2] == "relu":
                mods.append(nn.ReLU())
        else:
            raise ValueError(f"unknown layer {layer}")
    return nn.Sequential(*mods)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", required=True, help="the JSON layer list")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--limit", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=torch_ref.DEFAULT_DATA_DIR)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    x, y = torch_ref.load_split(args.data_dir, "train", args.limit)
    x = x.view(-1, 1, 28, 28)
    model = build(json.loads(args.layers))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    best = 0.0
    for _ in range(args.epochs):
        _, _, sec = torch_ref.train_epoch(model, opt, x, y, gen, args.batch)
        best = max(best, x.shape[0] / sec)
    print(json.dumps({"threads": args.threads, "samples_per_s": best}))


if __name__ == "__main__":
    main()
