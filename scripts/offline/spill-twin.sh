#!/usr/bin/env bash
# Keep a shape twin that is bigger than the lent machine's disk (qwen3-32b: 65.5 GB, the disk has about
# 55 GB free once the rig is up): make it on a RAM disk, move shards to DISK_DIR until at most RAM_GB stay
# in RAM, and bind-mount each moved shard back into the twin's folder. The folder then reads as one
# (Docker's bind mounts are recursive, so a container that mounts it sees the shards too).
# A level-1 sleep of that model pins its weights in host memory as well: keep RAM_GB + the weights well
# under the host's memory. `spill-twin.sh --undo TWIN_DIR` unmounts the shards again.
# usage: spill-twin.sh TWIN_DIR DISK_DIR RAM_GB     (root; TWIN_DIR on a tmpfs, made by make-twins.sh)
set -euo pipefail
if [ "${1:-}" = --undo ]; then
  [ $# -eq 2 ] || { echo "usage: $0 --undo TWIN_DIR" >&2; exit 2; }
  for f in "$2"/*.safetensors; do mountpoint -q "$f" && umount "$f"; done
  exit 0
fi
[ $# -eq 3 ] || { echo "usage: $0 TWIN_DIR DISK_DIR RAM_GB" >&2; exit 2; }
twin=$(cd "$1" && pwd)
keep=$(awk -v gb="$3" 'BEGIN { if (gb !~ /^[0-9]+([.][0-9]+)?$/) exit 1; printf "%d", gb * 1e9 }') ||
  { echo "RAM_GB: give a number of GB, e.g. 30 or 0.5 (got '$3')" >&2; exit 2; }
test -f "$twin/sleepkit-twin.json" || { echo "$twin: not a finished twin (make it with make-twins.sh)" >&2; exit 2; }
mkdir -p "$2"; disk=$(cd "$2" && pwd)
in_ram() { local n=0 f; for f in "$twin"/*.safetensors; do mountpoint -q "$f" || n=$(( n + $(stat -c %s "$f") )); done; echo $n; }
for f in "$twin"/*.safetensors; do
  [ "$(in_ram)" -gt "$keep" ] || break
  mountpoint -q "$f" && continue
  name=$(basename "$f")
  mv "$f" "$disk/$name" && touch "$f" && mount --bind "$disk/$name" "$f"
done
awk -v ram="$(in_ram)" -v disk="$(du -sb "$disk" | cut -f1)" -v t="$twin" -v d="$disk" \
  'BEGIN { printf "%s: %.1f GB in RAM, %.1f GB on disk (%s)\n", t, ram / 1e9, disk / 1e9, d }'
