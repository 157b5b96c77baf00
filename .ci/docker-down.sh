#!/usr/bin/env bash
# Stop the dockerd that .ci/docker-up.sh started (and only that one).
set -euo pipefail

PIDFILE="${SLEEPKIT_DOCKERD_PID:-/tmp/sleepkit-dockerd.pid}"
WAIT_S="${DOCKER_WAIT_S:-30}"
source "$(dirname "$0")/lib.sh"

if [ ! -f "$PIDFILE" ]; then
    echo "docker-down: no $PIDFILE: docker-up did not start an engine, nothing to stop" >&2
    exit 0
fi
pid="$(cat "$PIDFILE")"
if ! $SUDO kill -0 "$pid" 2>/dev/null || ! grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    echo "docker-down: dockerd $pid is not running" >&2
    $SUDO rm -f "$PIDFILE"
    exit 0
fi  # dockerd removes its own pidfile on a clean exit
echo "docker-down: stopping dockerd $pid" >&2
$SUDO kill -TERM "$pid"
for ((i = 0; i < WAIT_S * 2; i++)); do
    $SUDO kill -0 "$pid" 2>/dev/null || { $SUDO rm -f "$PIDFILE"; echo "docker-down: stopped" >&2; exit 0; }
    sleep 0.5
done
echo "docker-down: dockerd $pid still running after ${WAIT_S} s; sending KILL" >&2
$SUDO kill -KILL "$pid" || true
$SUDO rm -f "$PIDFILE"
