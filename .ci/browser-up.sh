#!/usr/bin/env bash
# Install the headless browser the site tests load pages in (tests/test_site.py, marker `browser`):
# Debian's chromium, from the Debian archive like the Docker engine and Slurm (no browser download).
# Idempotent: nothing to do when chromium is already there. Starts nothing: each test starts its own.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

say() { echo "browser-up: $*" >&2; }

if command -v chromium >/dev/null; then
    say "chromium already installed"
else
    apt_install chromium
fi
chromium --version 2>/dev/null | sed 's/^/browser-up: /' >&2
