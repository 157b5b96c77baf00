#!/usr/bin/env bash
# On a GPU host without network: make the twins (once) and run all five tables with real vLLM.
# usage: reference-run.sh WORKDIR [`kit run` tables and options; default --all]
#   WORKDIR/overlay  as made by assemble.sh (PARTS_DIR WORKDIR/overlay)
#   WORKDIR/twins    the two shape twins (made here if missing)
#   WORKDIR/results  the run (results/<run-id>/...)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR [kit run options]" >&2; exit 2; }
W=$(cd "$1" && pwd); shift
KIT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$KIT"
bash scripts/offline/make-twins.sh "$W/twins"
SLEEPKIT_OVERLAY="$W/overlay" source scripts/offline/env.sh
[ $# -gt 0 ] || set -- --all
exec python3 -m kit run --runtime local --fixed-output \
  --model-a "$W/twins/qwen3-0.6b" --model-b "$W/twins/phi-3-mini" \
  --results-dir "$W/results" "$@"
