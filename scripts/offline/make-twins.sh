#!/usr/bin/env bash
# Make shape twins in DIR (skips one that is already there): the study's two, or the NAMEs given
# (e.g. qwen3-1.7b qwen3-8b; `kit models twin --help` lists them). On a CUDA host the weights are made
# on the GPU; the bytes are the same as on the CPU.
# usage: make-twins.sh DIR [NAME ...]   (needs torch, transformers, tokenizers, safetensors; no network)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME ...]" >&2; exit 2; }
dir=$1; shift
[ $# -gt 0 ] || set -- qwen3-0.6b phi-3-mini
cd "$(dirname "$0")/../.."
for name in "$@"; do
  [ -f "$dir/$name/sleepkit-twin.json" ] || python3 -m kit models twin "$name" --out "$dir/$name"
done
