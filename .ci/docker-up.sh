#!/usr/bin/env bash
# Bring up a local Docker engine for the integration tests, and the test base image.
# Idempotent: every step is skipped when already done.
#   1. install Debian's docker.io and debootstrap if missing
#   2. start `dockerd --bridge=none --iptables=false` if no engine answers (host networking only)
#   3. build sleepkit-testbase:bookworm (debootstrap minbase + python3 + psutil) if absent
# Env: SLEEPKIT_TESTBASE (image tag), SLEEPKIT_DOCKERD_LOG, SLEEPKIT_DOCKERD_PID, DOCKER_WAIT_S.
set -euo pipefail

BASE_TAG="${SLEEPKIT_TESTBASE:-sleepkit-testbase:bookworm}"
LOG="${SLEEPKIT_DOCKERD_LOG:-/tmp/sleepkit-dockerd.log}"
PIDFILE="${SLEEPKIT_DOCKERD_PID:-/tmp/sleepkit-dockerd.pid}"
WAIT_S="${DOCKER_WAIT_S:-60}"
source "$(dirname "$0")/lib.sh"

say() { echo "docker-up: $*" >&2; }

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    apt_install ${missing[@]+"${missing[@]}"}
}

engine_up() { docker info >/dev/null 2>&1; }

start_engine() {
    engine_up && { say "engine already answers"; return 0; }
    say "starting dockerd (log: $LOG)"
    # dockerd writes (and on exit removes) $PIDFILE itself; docker-down.sh stops that pid only.
    $SUDO setsid dockerd --bridge=none --iptables=false --ip6tables=false \
        --pidfile "$PIDFILE" </dev/null >"$LOG" 2>&1 &
    local launcher=$! i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        engine_up && { say "engine up after $((i / 2)) s"; return 0; }
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.5
    done
    say "ERROR: Docker engine did not answer within ${WAIT_S} s. Last lines of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    exit 1
}

# The Debian mirror apt uses here (first entry carrying the plain `bookworm` suite).
debian_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) {
                 if ($(i + 1) == "bookworm") { print $i; exit } } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" } {
                 uri = ""; ok = 0
                 for (i = 1; i <= NF; i++) {
                     if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
                     if ($i ~ /^Suites:/) { n = split($i, s, " "); for (j = 2; j <= n; j++) if (s[j] == "bookworm") ok = 1 }
                 }
                 if (ok && uri != "") { print uri; exit } }' "$f"
    done
}

build_testbase() {
    if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        say "$BASE_TAG exists"; return 0
    fi
    local mirror dir
    mirror="$(debian_mirror | head -n 1)"
    [ -n "$mirror" ] || { say "ERROR: no bookworm mirror found in /etc/apt/sources.list(.d)"; exit 1; }
    dir="$(mktemp -d /tmp/sleepkit-testbase.XXXXXX)"
    say "debootstrap bookworm from $mirror into $dir"
    if ! $SUDO debootstrap --variant=minbase --include=python3,python3-psutil \
            bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
        say "ERROR: debootstrap failed; last lines of $dir.log:"; tail -n 20 "$dir.log" >&2
        $SUDO rm -rf "$dir"; exit 1
    fi
    $SUDO rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
    $SUDO tar -C "$dir" -c . | docker import --change 'CMD ["python3"]' - "$BASE_TAG" >/dev/null
    $SUDO rm -rf "$dir" "$dir.log"
    say "imported $BASE_TAG"
}

install_packages
start_engine
build_testbase
docker version --format 'docker-up: engine {{.Server.Version}} ready' >&2
