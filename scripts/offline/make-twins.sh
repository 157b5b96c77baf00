#!/usr/bin/env bash
# Make the two shape twins of the study's models in DIR (skips one that is already there).
# usage: make-twins.sh DIR    (needs torch, transformers, tokenizers, safetensors; no network)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
cd "$(dirname "$0")/../.."
for name in qwen3-0.6b phi-3-mini; do
  [ -f "$1/$name/sleepkit-twin.json" ] || python3 -m kit models twin "$name" --out "$1/$name"
done
