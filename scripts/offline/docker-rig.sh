#!/usr/bin/env bash
# The Docker runtime on a GPU host without network and without Docker (see docs/offline-gpu.md).
#
# usage: docker-rig.sh up ENGINE_DIR [STATE_DIR]
#        docker-rig.sh base-image OVERLAY_DEST TAG
#        docker-rig.sh down [STATE_DIR]
#
#   up          checks ENGINE_DIR/docker-engine.tar.xz against ENGINE_DIR/SHA256SUMS (made by
#               pack-engine.sh), unpacks it to STATE_DIR/engine, starts dockerd in its own session with
#               data-root, exec-root and socket under STATE_DIR, waits until it answers, and writes
#               STATE_DIR/env.sh (DOCKER_HOST, PATH with the docker CLI, PYTHONPATH with docker-py if
#               the host's python3 lacks it). Later shells: `source STATE_DIR/env.sh`.
#   base-image  imports this host's userland (ROOTFS_DIRS, with the PyTorch venv) as an image, then
#               builds TAG on it: the overlay OVERLAY_DEST/site (made by assemble.sh) copied into the
#               image, the environment vLLM needs, vLLM's API server as entrypoint.
#   down        stops the dockerd that `up` started from STATE_DIR (only that one).
# Every step is skipped when already done. STATE_DIR defaults to $SLEEPKIT_DOCKER_STATE or
# /root/sleepkit-docker.
#
# base-image settings (environment; defaults are for the GPU host):
#   ROOTFS_DIRS     folders of / that make the userland  [bin sbin lib lib64 etc usr opt/torch]
#   TORCH_VENV      the PyTorch venv; its bin/ goes first on PATH  [/opt/torch/.venv]
#   VENV_EXCLUDE    top-level entries of the venv's site-packages to leave out (globs), packages
#                   vLLM never imports  [tensorflow tensorflow_* tensorboard tensorboard_* keras jax jaxlib jax_plugins jax_cuda*]
#   EXCLUDES        more tar --exclude patterns  []
#   DROP_BYTECODE=1 leave __pycache__ out too (each container then recompiles torch & co. in memory
#                   at every server start: slower loads)  [0]
#   COMPILE_BYTECODE  1: add a layer with the venv's bytecode (compileall); auto: only when under half
#                   of the venv's .py files have bytecode (a venv made by uv has none)  [auto]
#   USERLAND_TAG    the imported image  [sleepkit-userland:<hash of the settings above>]
#   FORCE_IMPORT=1  import again even if USERLAND_TAG exists
#   OVERLAY_IN_IMAGE  where the overlay goes in the image  [/opt/vllm-overlay]
#   DOCKER_HOST     the engine  [unix://STATE_DIR/docker.sock];  DOCKER  the CLI  [STATE_DIR/engine/bin/docker]
set -euo pipefail

PROG=docker-rig
USAGE="usage: $0 up ENGINE_DIR [STATE_DIR] | base-image OVERLAY_DEST TAG | down [STATE_DIR]"
die() { echo "$PROG: $*" >&2; exit 1; }
usage() { echo "$USAGE" >&2; exit 2; }
say() { echo "$PROG: $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
T_ALL=$(now)

state_dir() {  # absolute, symlinks resolved (so /proc/PID/exe can be compared)
  local d=${1:-${SLEEPKIT_DOCKER_STATE:-/root/sleepkit-docker}}
  mkdir -p "$d" && (cd "$d" && pwd -P)
}

# The dockerd of STATE_DIR, if it runs: prints its pid.
our_dockerd() {
  local pid
  pid=$(cat "$STATE/dockerd.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$STATE/engine/bin/dockerd" ] || return 1
  echo "$pid"
}

engine_answers() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------- up
cmd_up() {
  [ $# -ge 1 ] && [ $# -le 2 ] || usage
  [ -d "$1" ] || die "$1 is not a folder; give the folder holding docker-engine.tar.xz and SHA256SUMS"
  local EDIR; EDIR=$(cd "$1" && pwd)
  STATE=$(state_dir "${2:-}")
  local E=$STATE/engine SOCK=$STATE/docker.sock LOG=$STATE/dockerd.log t pid sum
  [ -f "$EDIR/docker-engine.tar.xz" ] && [ -f "$EDIR/SHA256SUMS" ] ||
    die "$EDIR lacks docker-engine.tar.xz or SHA256SUMS; carry both (made by scripts/offline/pack-engine.sh)"

  t=$(now)
  (cd "$EDIR" && sha256sum --quiet -c SHA256SUMS) ||
    die "docker-engine.tar.xz does not match SHA256SUMS; carry it again"
  sum=$(awk '$2 ~ /docker-engine\.tar\.xz$/ { print $1 }' "$EDIR/SHA256SUMS")
  if [ "$(cat "$E/.sha256" 2>/dev/null)" = "$sum" ]; then
    say "engine already unpacked in $E"
  else
    if pid=$(our_dockerd); then
      die "dockerd $pid from $STATE runs another engine; stop it first: $0 down $STATE"
    fi
    rm -rf "$E"
    xz -dc "$EDIR/docker-engine.tar.xz" | tar -C "$STATE" -xf -
    echo "$sum" > "$E/.sha256"
    say "checked and unpacked the engine into $E ($(secs "$t")): $(head -1 "$E/VERSIONS")"
  fi
  export DOCKER_HOST=unix://$SOCK DOCKER=$E/bin/docker

  # Only the libraries this host lacks come from the tarball (ENGINE_LIBS=all: every one of them).
  local L=$E/lib.used so used=() have
  have=$( (/sbin/ldconfig -p 2>/dev/null || true) | awk '{ print $1 }')
  rm -rf "$L"; mkdir -p "$L"
  for so in "$E"/lib/*; do
    so=${so##*/}
    if [ "${ENGINE_LIBS:-missing}" = all ] || ! grep -qxF "$so" <<< "$have"; then
      ln -s "../lib/$so" "$L/$so"; used+=("$so")
    fi
  done
  say "libraries from the tarball: ${used[*]:-none (the host has them all)}"
  local nf
  nf=$(LD_LIBRARY_PATH=$L ldd "$E"/bin/* 2>/dev/null | grep 'not found' || true)
  [ -z "$nf" ] || die "the engine still lacks a library: $(echo "$nf" | head -1 | xargs); run with ENGINE_LIBS=all"

  if pid=$(our_dockerd) && engine_answers; then
    say "dockerd $pid already answers on $SOCK"
  else
    if pid=$(our_dockerd); then
      die "dockerd $pid from $STATE runs but does not answer on $SOCK; see $LOG, then $0 down $STATE"
    fi
    rm -f "$STATE/dockerd.pid" "$SOCK"
    [ -f "$STATE/daemon.json" ] || echo '{}' > "$STATE/daemon.json"
    t=$(now)
    # setsid: its own session, so it outlives the shell (and the device call) that started it.
    PATH=$E/bin:$PATH LD_LIBRARY_PATH=$L setsid "$E/bin/dockerd" \
      --config-file "$STATE/daemon.json" --data-root "$STATE/data" --exec-root "$STATE/run" \
      --pidfile "$STATE/dockerd.pid" -H "unix://$SOCK" \
      --bridge=none --iptables=false --ip6tables=false --userland-proxy=false \
      </dev/null >>"$LOG" 2>&1 &
    local launcher=$! i
    for ((i = 0; i < ${WAIT_S:-60} * 10; i++)); do
      engine_answers && break
      kill -0 "$launcher" 2>/dev/null || our_dockerd >/dev/null ||
        { tail -n 15 "$LOG" >&2; die "dockerd exited; the lines above are the end of $LOG"; }
      sleep 0.1
    done
    engine_answers || { tail -n 15 "$LOG" >&2; die "dockerd did not answer within ${WAIT_S:-60} s; see $LOG"; }
    say "started dockerd $(our_dockerd) on $SOCK, log $LOG ($(secs "$t"))"
  fi
  say "engine: $("$DOCKER" info --format 'Docker {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}, data {{.DockerRootDir}}') ($(df -BG --output=avail "$STATE" | tail -1 | tr -d ' ') free)"

  # The kit's host side needs docker-py >= 7.1; use the carried wheel if python3 lacks it.
  local pyl=""
  if env -u PYTHONPATH python3 -c 'import docker, sys; sys.exit(tuple(map(int, docker.__version__.split(".")[:2])) < (7, 1))' 2>/dev/null; then
    say "docker-py $(python3 -c 'import docker; print(docker.__version__)') is already importable by $(command -v python3)"
  elif ls "$E"/wheels/docker-*.whl >/dev/null 2>&1; then
    rm -rf "$STATE/pylib"
    python3 -m zipfile -e "$(ls "$E"/wheels/docker-*.whl | head -1)" "$STATE/pylib"
    pyl=$STATE/pylib
    say "docker-py from the tarball unpacked into $pyl (on PYTHONPATH in env.sh)"
    python3 -c 'import requests, urllib3' 2>/dev/null ||
      say "WARNING: $(command -v python3) lacks requests or urllib3, which docker-py needs"
  else
    say "WARNING: python3 has no docker-py >= 7.1 and the tarball carries none; the kit cannot reach the engine"
  fi
  {
    echo "export DOCKER_HOST=unix://$SOCK"
    echo "export PATH=$E/bin:\$PATH"
    [ -z "$pyl" ] || echo "export PYTHONPATH=$pyl\${PYTHONPATH:+:\$PYTHONPATH}"
  } > "$STATE/env.sh"
  say "up in $(secs "$T_ALL"). What the kit needs, also in $STATE/env.sh (source it in each new shell):"
  cat "$STATE/env.sh"
}

# -------------------------------------------------------------------------------------------- down
cmd_down() {
  [ $# -le 1 ] || usage
  STATE=$(state_dir "${1:-}")
  local pid i t; t=$(now)
  if ! pid=$(our_dockerd); then
    say "no dockerd from $STATE is running; nothing to stop"
    return 0
  fi
  kill -TERM "$pid"
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "dockerd $pid did not stop within 60 s; see $STATE/dockerd.log, then kill $pid"
  # dockerd stops its containerd; anything else still running from this engine's folder is a leftover.
  local p left=()
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null)" in "$STATE/engine/bin/"*) left+=("${p#/proc/}") ;; esac
  done
  if [ ${#left[@]} -gt 0 ]; then
    kill -TERM "${left[@]}" 2>/dev/null || true
    say "stopped leftovers of this engine: ${left[*]}"
  fi
  # What dockerd leaves mounted under STATE_DIR (its default netns) would keep `rm -rf STATE_DIR` from working.
  local m um=()
  while read -r m; do
    if umount -l "$m" 2>/dev/null; then um+=("$m"); fi
  done < <(awk -v s="$STATE/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  [ ${#um[@]} -eq 0 ] || say "unmounted ${um[*]}"
  say "stopped dockerd $pid ($(secs "$t")); its data stays in $STATE/data"
}

# -------------------------------------------------------------------------------------- base-image
cmd_base_image() {
  [ $# -eq 2 ] || usage
  local OVL TAG=$2 t
  TMPD=$(mktemp -d); trap 'rm -rf "$TMPD"' EXIT
  local W=$TMPD B=$TMPD
  [ -f "$1/site/vllm/__init__.py" ] ||
    die "$1/site/vllm/__init__.py is missing; give the DEST that scripts/offline/assemble.sh unpacked into"
  OVL=$(cd "$1" && pwd)
  [[ $TAG =~ ^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$ ]] || die "TAG '$TAG' is not a valid image reference; e.g. sleepkit-vllm:v0.24.0"
  STATE=$(state_dir "")
  DOCKER=${DOCKER:-$STATE/engine/bin/docker}
  [ -x "$DOCKER" ] || DOCKER=$(command -v docker) || die "no docker CLI; run $0 up ENGINE_DIR first"
  export DOCKER_HOST=${DOCKER_HOST:-unix://$STATE/docker.sock} DOCKER_BUILDKIT=0
  engine_answers || die "no Docker engine answers at $DOCKER_HOST; run $0 up ENGINE_DIR first"

  local DIRS=() d VENV=${TORCH_VENV:-/opt/torch/.venv} OIN=${OVERLAY_IN_IMAGE:-/opt/vllm-overlay}
  local vver
  vver=$(sed -n 's/^Version: //p' "$OVL"/site/vllm-*.dist-info/METADATA 2>/dev/null | head -1)
  [ -n "$vver" ] || die "no vllm-*.dist-info/METADATA in $OVL/site; assemble the overlay again"
  local want=() venv_ex=() more_ex=()
  # Split on blanks, no globbing here: the lists hold patterns for tar and the venv.
  read -r -a want <<< "${ROOTFS_DIRS:-bin sbin lib lib64 etc usr opt/torch}"
  read -r -a venv_ex <<< "${VENV_EXCLUDE-tensorflow tensorflow_* tensorboard tensorboard_* keras jax jaxlib jax_plugins jax_cuda*}"
  read -r -a more_ex <<< "${EXCLUDES:-}"
  for d in "${want[@]}"; do
    d=${d#/}
    if [ -e "/$d" ] || [ -L "/$d" ]; then DIRS+=("$d"); else say "skipping /$d (not on this host)"; fi
  done
  # The venv's python3 and everything it resolves to must be inside what goes in.
  [ -x "$VENV/bin/python3" ] || die "$VENV/bin/python3 not found; set TORCH_VENV to the PyTorch venv"
  local need
  need=$("$VENV/bin/python3" -c 'import os, sys; print(os.path.realpath(sys.executable)); print(sys.base_prefix); print(os.path.realpath(sys.prefix))')
  local p ok
  while read -r p; do
    ok=""
    for d in "${DIRS[@]}"; do
      case "$p/" in "$(readlink -f "/$d")"/*) ok=1 ;; esac
    done
    [ -n "$ok" ] || die "$p (needed by $VENV/bin/python3) is outside ROOTFS_DIRS (${DIRS[*]}); add its folder"
  done <<< "$need"
  local SITE; SITE=$("$VENV/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

  local EXC=(--exclude=usr/local/nvidia --exclude='usr/local/cuda*' --exclude=usr/share/doc
             --exclude=usr/share/man --exclude=usr/share/info --exclude=usr/lib/modules
             --exclude=usr/lib/firmware --exclude=usr/src --exclude='etc/ssh/ssh_host_*'
             --exclude=.cache)
  if [ "${DROP_BYTECODE:-0}" = 1 ]; then EXC+=(--exclude=__pycache__); fi
  local x pat dropped=() sz
  for x in "${venv_ex[@]}"; do
    for pat in "$SITE"/$x "$SITE"/$x-*.dist-info; do
      [ -e "$pat" ] || continue
      EXC+=("--exclude=${pat#/}")
      sz=$(du -sm "$pat" | cut -f1); dropped+=("${pat##*/} ${sz}M")
    done
  done
  for x in "${more_ex[@]}"; do EXC+=("--exclude=$x"); done

  local UTAG=${USERLAND_TAG:-sleepkit-userland:$(printf '%s\n' "${DIRS[@]}" "${EXC[@]}" "$VENV" | sha256sum | cut -c1-12)}
  if "$DOCKER" image inspect "$UTAG" >/dev/null 2>&1 && [ "${FORCE_IMPORT:-0}" != 1 ]; then
    say "userland image $UTAG exists; not importing again (FORCE_IMPORT=1 to redo)"
  else
    say "importing the userland as $UTAG: /{$(IFS=,; echo "${DIRS[*]}")}"
    say "  left out: /usr/local/nvidia (bound at run time), /usr/local/cuda*, docs, man, info, kernel modules, firmware, /usr/src, ssh host keys, caches$([ "${DROP_BYTECODE:-0}" = 1 ] && echo ", __pycache__")"
    say "  sizes before leaving anything out (MB): $(cd / && du -sm "${DIRS[@]}" 2>/dev/null | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')"
    say "  free for the engine's data: $(df -BG --output=avail "$("$DOCKER" info -f '{{.DockerRootDir}}')" 2>/dev/null | tail -1 | tr -d ' ' || echo '?')"
    say "  left out of $SITE: ${dropped[*]:-nothing (none of VENV_EXCLUDE is installed)}"
    say "  largest entries of $SITE (MB): $(du -sm "$SITE"/* 2>/dev/null | sort -rn | head -8 | awk '{ n = split($2, a, "/"); printf "%s%s %s", (NR > 1 ? ", " : ""), a[n], $1 }')"
    mkdir -p "$W"/skel/{tmp,var/tmp,var/log,root,home,run,mnt,proc,sys,dev}
    chmod 1777 "$W/skel/tmp" "$W/skel/var/tmp"; chmod 700 "$W/skel/root"
    t=$(now)
    if ! { tar -cf - --totals --numeric-owner "${EXC[@]}" -C "$W/skel" tmp var root home run mnt proc sys dev \
             -C / "${DIRS[@]}" 2>"$W/tar.err"; echo $? > "$W/tar.rc"; } |
         "$DOCKER" import --message "sleepkit userland of $(uname -n) $(date -u +%FT%TZ)" - "$UTAG" >/dev/null; then
      tail -5 "$W/tar.err" >&2; die "docker import of the userland failed; see the lines above and the dockerd log"
    fi
    # tar: 0 fine, 1 "file changed as we read it" (harmless here), 2 fatal.
    [ "$(cat "$W/tar.rc")" -le 1 ] || { tail -5 "$W/tar.err" >&2; die "tar failed; see the lines above"; }
    local bytes
    bytes=$(sed -n 's/^Total bytes written: \([0-9]*\).*/\1/p' "$W/tar.err")
    say "imported $UTAG: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }')) went in, $(grep -vc '^Total bytes' "$W/tar.err" || true) tar warnings ($(secs "$t"))"
  fi

  # Without bytecode every python3 in the container compiles torch & co. again at each start
  # (PYTHONDONTWRITEBYTECODE=1 in the kit's image): measured +5 s per process for torch + transformers.
  local npy npyc tagc compile="" RUNC=""
  tagc=$("$VENV/bin/python3" -c 'import sys; print(sys.implementation.cache_tag)')
  npy=$(find "$SITE" -name '*.py' | wc -l)
  npyc=$(find "$SITE" -path "*/__pycache__/*.$tagc.pyc" | wc -l)
  case "${COMPILE_BYTECODE:-auto}" in
    1) compile=1 ;;
    auto) [ "${DROP_BYTECODE:-0}" = 1 ] || [ $((npyc * 2)) -ge "$npy" ] || compile=1 ;;
  esac
  say "bytecode in $SITE: $npyc $tagc .pyc for $npy .py files$([ -n "$compile" ] && echo "; adding a layer that compiles it")"
  [ -z "$compile" ] || RUNC="RUN $VENV/bin/python3 -m compileall -q -j 0 $SITE >/dev/null 2>&1 || true"

  t=$(now)
  cat > "$B/Dockerfile" <<EOF
# Made by scripts/offline/docker-rig.sh base-image: this host's userland + the offline vLLM overlay.
FROM $UTAG
COPY site $OIN/site
# PYTHONPATH puts the overlay before the venv's own packages. FlashInfer is not carried, so its
# sampler is off; no hub, no usage reporting (see scripts/offline/env.sh).
ENV PATH=$VENV/bin:/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib \\
    PYTHONPATH=$OIN/site \\
    VLLM_USE_FLASHINFER_SAMPLER=0 \\
    HF_HUB_OFFLINE=1 \\
    VLLM_NO_USAGE_STATS=1
$RUNC
LABEL org.opencontainers.image.title="vllm $vver on the host userland" \\
      org.opencontainers.image.version="$vver" \\
      sleepkit.userland="$UTAG" \\
      sleepkit.overlay="$OIN/site"
WORKDIR /root
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
EOF
  say "building $TAG on $UTAG with $OVL/site ($(du -sm "$OVL/site" | cut -f1) MB) at $OIN/site"
  tar -cf - -C "$B" Dockerfile -C "$OVL" site |
    "$DOCKER" build --network host --rm --force-rm -t "$TAG" - > "$B/build.log" 2>&1 ||
    { sed 's/^/  /' "$B/build.log" >&2; die "building $TAG failed; see the output above"; }
  grep -E '^(Step|Successfully|Sending)' "$B/build.log" | sed 's/^/  /' || true
  say "built $TAG ($(secs "$t")): id $("$DOCKER" image inspect -f '{{.Id}}' "$TAG"), $("$DOCKER" image inspect -f '{{.Size}}' "$TAG" | awk '{ printf "%.2f GB", $1 / 1e9 }')"

  t=$(now)
  local v
  v=$("$DOCKER" run --rm --network host --entrypoint python3 "$TAG" \
        -c 'import importlib.metadata as m; print(m.version("vllm"))') || die "python3 does not run in $TAG"
  say "vllm version in $TAG: $v ($(secs "$t"))"
  [ "$v" = "$vver" ] || die "$TAG reports vllm $v, the overlay holds $vver; is another vllm in the venv?"
  t=$(now)
  local out rc=0
  out=$("$DOCKER" run --rm --network host --entrypoint python3 "$TAG" -c '
import importlib.util as u
import vllm
print("import vllm: ok,", vllm.__file__)
for m in ("torch", "psutil"):
    print(m + ":", getattr(__import__(m), "__version__", "?") if u.find_spec(m) else "MISSING (vLLM and the kit need it)")' 2>&1) || rc=$?
  grep -E '^(import vllm|torch|psutil|Traceback|[A-Za-z]*Error)' <<< "$out" | sed "s/^/$PROG:   /" || true
  [ "$rc" -eq 0 ] ||
    die "'import vllm' fails in $TAG; run: $DOCKER run --rm --network host --entrypoint python3 $TAG -c 'import vllm'"
  say "import check ($(secs "$t")); done in $(secs "$T_ALL"). Next: kit build --vllm-image $TAG"
}

[ $# -ge 1 ] || usage
CMD=$1; shift
case "$CMD" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  base-image) cmd_base_image "$@" ;;
  -h|--help|help) echo "$USAGE" ;;
  *) usage ;;
esac
