#!/usr/bin/env bash
# Installs the JavaScript peers that bench/matmul.ts compares against into .bench-peers/
# (gitignored), so they never enter package.json. Usage: bash bench/install-peers.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.bench-peers"
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{ "name": "hasten-bench-peers", "private": true }' > package.json
npm install --no-save --no-audit --no-fund \
  @tensorflow/tfjs-core@4.22 \
  @tensorflow/tfjs-backend-wasm@4.22 \
  @jax-js/jax
echo "bench peers installed in $dir"
