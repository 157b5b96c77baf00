#!/usr/bin/env bash
# On a GPU host without network: make the twins (once) and run tables with real vLLM.
# usage: reference-run.sh WORKDIR [`kit run` tables and options; default --all]
#   WORKDIR/overlay  as made by assemble.sh (PARTS_DIR WORKDIR/overlay)
#   WORKDIR/twins    the two shape twins (made here if missing)
#   WORKDIR/results  the run (results/<run-id>/...)
# RUNTIME=docker runs each arm in a container through the engine of docker-rig.sh (its env.sh in
# SLEEPKIT_DOCKER_STATE, default /root/sleepkit-docker), on the base image VLLM_BASE (default
# sleepkit-vllm:v0.24.0, made by `docker-rig.sh base-image`), with --gpu-access devices.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR [kit run options]" >&2; exit 2; }
W=$(cd "$1" && pwd); shift
KIT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$KIT"
bash scripts/offline/make-twins.sh "$W/twins"
SLEEPKIT_OVERLAY="$W/overlay" source scripts/offline/env.sh
[ $# -gt 0 ] || set -- --all
case "${RUNTIME:-local}" in
  local) set -- --runtime local "$@" ;;
  docker)
    source "${SLEEPKIT_DOCKER_STATE:-/root/sleepkit-docker}/env.sh"
    set -- --runtime docker --gpu-access devices --vllm-image "${VLLM_BASE:-sleepkit-vllm:v0.24.0}" "$@" ;;
  *) echo "$0: RUNTIME must be local or docker (got ${RUNTIME})" >&2; exit 2 ;;
esac
exec python3 -m kit run --fixed-output \
  --model-a "$W/twins/qwen3-0.6b" --model-b "$W/twins/phi-3-mini" \
  --results-dir "$W/results" "$@"
