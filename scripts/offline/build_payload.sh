#!/usr/bin/env bash
# Build the offline vLLM 0.24.0 overlay on a machine that reaches PyPI.
# Target: a GPU host with Python 3.12 that already has torch 2.11.0+cu130, transformers,
# tokenizers, safetensors, numpy, psutil, requests (those are not carried).
# usage: build_payload.sh OUT_DIR   -> OUT_DIR/part.NN (each < 40 MiB) and OUT_DIR/SHA256SUMS
#        MOE=1 build_payload.sh OUT_DIR   keeps vLLM's MoE ops library (_moe_C_stable_libtorch: top-k
#        routing, expert alignment), which Qwen3-MoE models such as Qwen3-Coder-30B-A3B need.
# Downloaded wheels are cached in $SLEEPKIT_WHEELS (default ~/.cache/sleepkit-wheels), not in OUT_DIR,
# so OUT_DIR holds only what has to travel.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
WHEELS=${SLEEPKIT_WHEELS:-$HOME/.cache/sleepkit-wheels}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WHEELS"

# vLLM and what it needs beyond the host's packages, pinned. compressed-tensors (+ loguru) is imported
# by any --quantization, fp8 included (found on the H100: without it the l1-fp8 arm cannot start).
# The last four (httpcore2, truststore, jiter, distro) only serve the `openai` client package.
PKGS=(
  vllm==0.24.0
  fastapi==0.136.3 starlette==1.10.0 uvicorn==0.54.0 watchfiles==1.3.0
  pydantic==2.14.4 pydantic-core==2.50.5 typing-inspection==0.4.5 annotated-types==0.8.0
  cbor2==6.3.0 pyzmq==27.3.0 msgspec==0.22.0 pybase64==1.5.1 cachetools==8.0.2 sniffio==1.3.1
  openai-harmony==0.0.8 llguidance==1.7.6 xgrammar==0.2.3 apache-tvm-ffi==0.1.9
  partial-json-parser==0.2.1.1.post7 model-hosting-container-standards==0.1.16 jmespath==1.1.0
  prometheus-fastapi-instrumentator==8.1.0
  compressed-tensors==0.17.0 loguru==0.7.3
  openai==3.57.0 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 jiter==0.19.0 distro==1.9.0
)
# Wheels for CPython 3.12 on x86_64 Linux, whatever Python runs this script.
TARGET=(--only-binary=:all: --no-deps --python-version 3.12 --implementation cp)
for p in manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 \
         manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
  TARGET+=(--platform "${p}_x86_64")
done

python3 -m pip download -q "${TARGET[@]}" -d "$WHEELS" "${PKGS[@]}"
# Install only the pinned wheels, even if the cache holds others.
FILES=()
for spec in "${PKGS[@]}"; do
  name=${spec%%==*}; ver=${spec#*==}
  f=$(ls "$WHEELS"/"${name//-/_}"-"$ver"-*.whl 2>/dev/null | head -1) || true
  [ -n "$f" ] || { echo "missing wheel for $spec in $WHEELS" >&2; exit 1; }
  FILES+=("$f")
done
python3 -m pip install -q --no-index --no-compile "${TARGET[@]}" --target "$WORK/site" "${FILES[@]}"

# Drop what Hopper (sm_90) with dense models does not use: FA2, MoE (unless MOE=1), FlashMLA,
# QuTLASS, DeepGEMM, sm100 kernels, Rust helpers (about 330 MB).
cd "$WORK/site"
DROP=(vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so vllm/vllm-rs
      vllm/_flashmla_C.abi3.so vllm/_flashmla_extension_C.abi3.so vllm/_qutlass_C.abi3.so
      vllm/_rust_tool_parser.abi3.so vllm/spinloop.abi3.so xgrammar/lib/libxgrammar.a)
if [ "${MOE:-0}" = 1 ]; then
  test -f vllm/_moe_C_stable_libtorch.abi3.so
else
  DROP+=(vllm/_moe_C_stable_libtorch.abi3.so)
fi
rm -f "${DROP[@]}"
rm -rf vllm/third_party/deep_gemm vllm/third_party/fmha_sm100
strip --strip-debug xgrammar/libxgrammar_bindings.so   # ~53 MB of debug info
test -f vllm/__init__.py

cd "$WORK"
tar --owner=0 --group=0 --sort=name -cf - site | xz -9 -T"$(nproc)" > payload.tar.xz
# One transfer carries at most 64 MiB with the repository (16 MB tracked on 2026-12-07, most of it the
# reference runs' figures), so keep every part below 40 MiB.
LIMIT=$((40 * 1024 * 1024))
SIZE=$(stat -c %s payload.tar.xz)
N=$(( (SIZE + LIMIT - 1) / LIMIT ))
rm -f "$OUT"/part.* "$OUT"/SHA256SUMS
split -n "$N" -d payload.tar.xz "$OUT/part."
(cd "$OUT" && sha256sum part.* > SHA256SUMS)
ls -l "$OUT"/part.*
cat "$OUT/SHA256SUMS"
