#!/usr/bin/env bash
# The main job: install what is missing, build nnc, compile the example
# network and train it on Fashion-MNIST, printing test accuracy per epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
mkdir -p out
./build/compiler/nnc examples/mlp.nn -o out/mlp
./out/mlp --save out/mlp.ckpt
