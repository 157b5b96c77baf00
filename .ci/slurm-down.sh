#!/usr/bin/env bash
# Stop the one-node Slurm cluster that .ci/slurm-up.sh started (and only the daemons it started).
# Jobs still in the queue of a controller slurm-up started are cancelled first, so none survives
# into the next slurm-up (Slurm keeps its job state on disk).
set -euo pipefail

STATE="${SLEEPKIT_SLURM_STATE:-/run/sleepkit-slurm}"
WAIT_S="${SLURM_WAIT_S:-30}"
source "$(dirname "$0")/lib.sh"

say() { echo "slurm-down: $*" >&2; }

pid_of() {   # the pid slurm-up recorded for NAME, when that process still runs
    local pid
    pid="$(cat "$STATE/$1.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && grep -qx "$1" "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}

cancel_jobs() {
    pid_of slurmctld >/dev/null || return 0
    local jobs i
    jobs="$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    [ -n "${jobs// /}" ] || return 0
    say "cancelling jobs $jobs"
    $SUDO scancel $jobs 2>/dev/null || true
    for ((i = 0; i < WAIT_S * 5; i++)); do
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && return 0
        sleep 0.2
    done
    say "jobs still listed after ${WAIT_S} s: $(squeue -h -o '%i %T' | tr '\n' ' ')"
}

stop() {
    local name="$1" pid i
    if ! pid="$(pid_of "$name")"; then
        [ -f "$STATE/$name.pid" ] && say "$name is not running"
        $SUDO rm -f "$STATE/$name.pid"
        return 0
    fi
    say "stopping $name $pid"
    $SUDO kill -TERM "$pid"
    for ((i = 0; i < WAIT_S * 5; i++)); do
        $SUDO kill -0 "$pid" 2>/dev/null || { $SUDO rm -f "$STATE/$name.pid"; return 0; }
        sleep 0.2
    done
    say "$name $pid still running after ${WAIT_S} s; sending KILL"
    $SUDO kill -KILL "$pid" || true
    $SUDO rm -f "$STATE/$name.pid"
}

if [ ! -d "$STATE" ]; then
    say "no $STATE: slurm-up did not start a cluster, nothing to stop"
    exit 0
fi
cancel_jobs
stop slurmd
stop slurmctld
stop munged
say "stopped"
