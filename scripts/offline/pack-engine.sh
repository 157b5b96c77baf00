#!/usr/bin/env bash
# Pack Debian's Docker engine for a GPU host that has no Docker and no network.
# usage: pack-engine.sh OUT_DIR   -> OUT_DIR/docker-engine.tar.xz (< 60 MiB) and OUT_DIR/SHA256SUMS
#
# Run it on a Debian bookworm machine with the packages docker.io, containerd, runc and tini installed
# (`apt-get install docker.io`). The tarball holds, under engine/:
#   bin/   dockerd, containerd, containerd-shim-runc-v2, runc, docker-init (tini, static), docker (the CLI)
#   lib/   every shared library those binaries load except glibc's own; on the GPU host
#          docker-rig.sh uses only those the host lacks (an Ubuntu 24.04 host lacked libdevmapper
#          and libseccomp)
#   wheels/ the docker-py wheel the kit's host side needs (DOCKER_PY=docker==7.1.0; DOCKER_PY= to leave out)
#   VERSIONS the Debian package versions
# Unpack and start it on the GPU host with `scripts/offline/docker-rig.sh up OUT_DIR`.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
die() { echo "pack-engine: $*" >&2; exit 1; }
T0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

DOCKER_PY=${DOCKER_PY-docker==7.1.0}
WHEELS=${SLEEPKIT_WHEELS:-$HOME/.cache/sleepkit-wheels}
LIMIT=$((60 * 1024 * 1024))
PKGS=(docker.io containerd runc tini)

for p in "${PKGS[@]}"; do
  [ "$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] ||
    die "Debian package $p is not installed; run: apt-get install docker.io (it pulls containerd, runc, tini)"
done
# Each binary from its Debian package's own file list (a docker CLI elsewhere on PATH is not Debian's).
pkg_file() {  # PACKAGE NAME -> path of .../bin/NAME or .../sbin/NAME shipped by PACKAGE
  local f
  f=$(dpkg -L "$1" | grep -m1 -E "/s?bin/$2\$" || true)
  [ -n "$f" ] && [ -e "$f" ] || die "$1 ships no $2; reinstall it: apt-get install --reinstall $1"
  echo "$f"
}
declare -A SRC=(
  [dockerd]=$(pkg_file docker.io dockerd)
  [docker]=$(pkg_file docker.io docker)
  [containerd]=$(pkg_file containerd containerd)
  [containerd-shim-runc-v2]=$(pkg_file containerd containerd-shim-runc-v2)
  [runc]=$(pkg_file runc runc)
  [docker-init]=$(pkg_file tini tini-static)
)
for name in "${!SRC[@]}"; do [ -n "${SRC[$name]}" ] || exit 1; done   # pkg_file said why

OUT=$(mkdir -p "$1" && cd "$1" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
E=$W/engine
mkdir -p "$E/bin" "$E/lib" "$E/wheels"

for name in "${!SRC[@]}"; do
  cp -L "${SRC[$name]}" "$E/bin/$name"
done
file -L "$E/bin/docker-init" | grep -q 'statically linked' || die "docker-init (tini-static) is not static"
# Debian's binaries come stripped; strip whatever is not, to keep the tarball small.
for b in "$E"/bin/*; do
  if file "$b" | grep -q 'not stripped'; then strip "$b"; fi
done

# Shared libraries: all that ldd resolves for the binaries, except glibc (the host has its own, newer).
GLIBC='^(linux-vdso|ld-linux|libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl)[.-]'
for b in "$E"/bin/*; do
  { ldd "$b" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r soname path; do
  if ! [[ $soname =~ $GLIBC ]]; then cp -L "$path" "$E/lib/$soname"; fi
done
MISSING=$(ldd "$E"/bin/* 2>/dev/null | grep 'not found' || true)
[ -z "$MISSING" ] || die "a binary needs a library this machine lacks: $(echo "$MISSING" | head -1)"

if [ -n "$DOCKER_PY" ]; then
  mkdir -p "$WHEELS"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" "$DOCKER_PY" ||
    die "cannot download $DOCKER_PY from PyPI; put its wheel in $WHEELS or set DOCKER_PY= to leave it out"
  whl=$WHEELS/docker-${DOCKER_PY#*==}-py3-none-any.whl
  [ -f "$whl" ] || die "no $whl after the download; put the wheel there or set DOCKER_PY= to leave it out"
  cp "$whl" "$E/wheels/"
fi

{
  for p in "${PKGS[@]}"; do dpkg-query -W -f '${Package} ${Version}\n' "$p"; done
  [ -z "$DOCKER_PY" ] || echo "python: $DOCKER_PY"
  echo "packed on $(. /etc/os-release && echo "$PRETTY_NAME") $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$E/VERSIONS"

echo "pack-engine: contents (bytes, uncompressed)"
(cd "$E" && find bin lib wheels -type f -printf '  %10s %p\n' | sort -k2)
rm -f "$OUT/docker-engine.tar.xz" "$OUT/SHA256SUMS"
tar --owner=0 --group=0 --numeric-owner --sort=name -C "$W" -cf - engine |
  xz -9e -T"$(nproc)" > "$OUT/docker-engine.tar.xz.tmp"
mv "$OUT/docker-engine.tar.xz.tmp" "$OUT/docker-engine.tar.xz"
SIZE=$(stat -c %s "$OUT/docker-engine.tar.xz")
[ "$SIZE" -lt "$LIMIT" ] || die "docker-engine.tar.xz is $SIZE bytes, over 60 MiB; leave the CLI or docker-py out"
(cd "$OUT" && sha256sum docker-engine.tar.xz > SHA256SUMS)
echo "pack-engine: $OUT/docker-engine.tar.xz $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN { printf "%.1f", s / 1048576 }') MiB) in $(since "$T0")"
cat "$OUT/SHA256SUMS"
