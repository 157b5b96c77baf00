# Source on the GPU host after assemble.sh:  SLEEPKIT_OVERLAY=DEST source scripts/offline/env.sh
# (DEST as given to assemble.sh; the overlay lives in DEST/site.)
if [ -z "${SLEEPKIT_OVERLAY:-}" ] || [ ! -f "$SLEEPKIT_OVERLAY/site/vllm/__init__.py" ]; then
  echo "env.sh: set SLEEPKIT_OVERLAY to the DEST given to assemble.sh" >&2
  return 1 2>/dev/null || exit 1
fi
export PYTHONPATH="$SLEEPKIT_OVERLAY/site"
export VLLM_SERVER_DEV_MODE=1        # /sleep, /wake_up, /collective_rpc, ... endpoints
export VLLM_USE_FLASHINFER_SAMPLER=0 # flashinfer is not carried; else the engine dies after loading weights
export HF_HUB_OFFLINE=1
export VLLM_NO_USAGE_STATS=1
export PYTHONUNBUFFERED=1
