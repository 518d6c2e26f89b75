#!/usr/bin/env bash
# Installs the Debian 12 packages nnc needs to build, test and train, if any
# is missing.  Run as root (or with sudo available).
set -euo pipefail
pkgs=(build-essential cmake pkg-config flex bison llvm-19-dev libcriterion-dev
      zlib1g-dev dataset-fashion-mnist libxml2-utils librsvg2-bin
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
