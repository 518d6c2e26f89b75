#!/usr/bin/env bash
# The main job: install what is missing, build nnc, compile LeNet-5 and train
# it on Fashion-MNIST, printing loss and train/test accuracy per epoch (with
# a live progress line on a terminal), the curves as SVG in out/plots and the
# numbers in out/lenet.csv.
# Extra arguments go to the training binary (e.g. --epochs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
mkdir -p out
./build/compiler/nnc examples/lenet.nn -o out/lenet
./build/compiler/nnc examples/lenet.nn --summary
./out/lenet --save out/lenet.ckpt --plot out/plots --log out/lenet.csv "$@"
echo "curves: out/plots/loss.svg out/plots/accuracy.svg; metrics: out/lenet.csv"
