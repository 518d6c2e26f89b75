#!/usr/bin/env bash
# Installs the Debian 12 packages nnc needs to build, test and train, if any
# is missing.  Run as root (or with sudo available).
set -euo pipefail
pkgs=(build-essential cmake pkg-config flex bison llvm-19-dev libcriterion-dev
      zlib1g-dev dataset-fashion-mnist libxml2-utils librsvg2-bin
      libopenmpi-dev openmpi-bin
      protobuf-c-compiler libprotobuf-c-dev libonnx-dev python3-onnx
      fortunes)  # fortunes: the corpus of examples/charlm.nn
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "nnc: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
# node and npm for onnxruntime-node: optional, and only when the commands
# are missing (a machine may have them from elsewhere, e.g. NodeSource's
# nodejs, which bundles npm and conflicts with Debian's npm package).
if ! command -v npm >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm; } ||
    echo "nnc: nodejs/npm not installed; the ONNX runtime tests will skip"
fi
# onnxruntime for the ONNX tests (docs/onnx.md), into the project: optional.
bash "$(dirname "$0")/onnxruntime.sh" || echo "nnc: onnxruntime-node not installed; the ONNX tests will skip it"
