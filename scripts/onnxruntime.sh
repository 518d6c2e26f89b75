#!/usr/bin/env bash
# Installs the npm package onnxruntime-node (CPU only) into a directory of
# the project, build/ort/ (or $NNC_ORT_DIR), for tests/test_onnx.c, which
# runs nnc's ONNX exports in it.  Its install script would download GPU
# libraries it cannot use here: ONNXRUNTIME_NODE_INSTALL=skip keeps the
# CPU build the package ships.  Exits non-zero if npm is missing or fails;
# scripts/deps.sh goes on without it (the tests then skip, saying so).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${NNC_ORT_DIR:-build/ort}
version=1.30.0
command -v npm >/dev/null || { echo "onnxruntime.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
if [ -f "$dir/node_modules/onnxruntime-node/package.json" ]; then
  exit 0
fi
mkdir -p "$dir"
ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip \
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "onnxruntime-node@$version"
node -e "require('$PWD/$dir/node_modules/onnxruntime-node')" >/dev/null
echo "onnxruntime.sh: onnxruntime-node $version in $dir"
