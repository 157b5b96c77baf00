#!/usr/bin/env bash
# On the GPU host: verify the parts, unpack the overlay to DEST/site, precompile its bytecode.
# usage: assemble.sh PARTS_DIR DEST   (PARTS_DIR holds part.NN and SHA256SUMS)
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 PARTS_DIR DEST" >&2; exit 2; }
PARTS=$(cd "$1" && pwd)
mkdir -p "$2"; DEST=$(cd "$2" && pwd)
(cd "$PARTS" && sha256sum --quiet -c SHA256SUMS)
rm -rf "$DEST/site"
cat "$PARTS"/part.* | xz -d -T0 | tar -C "$DEST" -xf -
test -f "$DEST/site/vllm/__init__.py"
# Bytecode once here, or every cold server start pays for it. Some vendored files
# do not compile under 3.12; that is harmless, so failures are ignored.
python3 -m compileall -q -j 0 "$DEST/site" >/dev/null 2>&1 || true
echo "export SLEEPKIT_OVERLAY=$DEST"
echo "export PYTHONPATH=$DEST/site"
