#!/usr/bin/env bash
# Installs the JavaScript peers that the benchmarks compare against into .bench-peers/
# (gitignored), so they never enter package.json. Usage: bash bench/install-peers.sh
# All packages go in one command: `npm install --no-save` prunes what it was not asked for.
# @tensorflow/tfjs is there for its gradient definitions (tfjs-core's Node build registers none),
# which the training-step benchmark needs; the computing still happens in tfjs-backend-wasm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.bench-peers"
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{ "name": "hasten-bench-peers", "private": true }' > package.json
npm install --no-save --no-audit --no-fund \
  @tensorflow/tfjs-core@4.22 \
  @tensorflow/tfjs@4.22 \
  @tensorflow/tfjs-backend-wasm@4.22 \
  @jax-js/jax

# Debian's python3-torch calls whatever libblas.so.3 the system points at; without an optimised
# BLAS installed that is the reference BLAS (measured here: 8 GFLOP/s against OpenBLAS's 95 on
# one core), which would make PyTorch look slow for the wrong reason. An OpenBLAS unpacked here
# (nothing installed system-wide) is put on LD_LIBRARY_PATH for the PyTorch peer only.
if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
  tmp="$(mktemp -d)"
  if (cd "$tmp" && apt-get download libopenblas0-pthread >/dev/null 2>&1); then
    rm -rf "$dir/openblas" && dpkg -x "$tmp"/libopenblas0-pthread_*.deb "$dir/openblas"
    echo "OpenBLAS for the PyTorch peer unpacked in $dir/openblas"
  else
    echo "could not download libopenblas0-pthread; PyTorch will use the system BLAS"
  fi
  rm -rf "$tmp"
fi
echo "bench peers installed in $dir"
