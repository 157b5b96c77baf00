#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine for the Slurm integration tests (tests/test_slurm.py).
# Idempotent: every step is skipped when already done.
#   1. install Debian's slurm-wlm, munge, and podman + catatonit (the cluster's container tool) if missing
#   2. write /etc/slurm/slurm.conf + gres.conf (node `hostname -s`, CPUs = nproc, RealMemory from
#      /proc/meminfo, two stand-in GPUs: gres files /dev/null and /dev/zero -> CUDA_VISIBLE_DEVICES 0, 1)
#      unless a slurm.conf that slurm-up did not write is there
#   3. start munged, slurmctld, slurmd, each in its own session; their pids go to $STATE/*.pid
#      (slurm-down.sh stops those pids only)
#   4. wait (bounded) until `sinfo` shows the node idle; resume it if it is drained or down
#   5. podman: a CDI spec for the stand-in GPUs (sleepkit.test/gpu=0|1 -> /dev/sleepkit-gpu0|1 in the
#      container, as `nvidia-ctk cdi generate` makes nvidia.com/gpu=N), and, where this machine denies
#      raising rlimits (no CAP_SYS_RESOURCE), default ulimits that podman can set
# Accounting is off; finished jobs stay in `scontrol show job` for MinJobAge (1 h) and their final
# state is appended to $LOGDIR/jobcomp.log (jobcomp/filetxt).
# Env: SLEEPKIT_SLURM_STATE (pid files), SLEEPKIT_SLURM_LOGDIR, SLURM_WAIT_S, SLEEPKIT_SLURM_CONTAINER_TOOL
# (podman, or "none" to skip it).
set -euo pipefail

STATE="${SLEEPKIT_SLURM_STATE:-/run/sleepkit-slurm}"
LOGDIR="${SLEEPKIT_SLURM_LOGDIR:-/var/log/slurm}"
WAIT_S="${SLURM_WAIT_S:-60}"
TOOL="${SLEEPKIT_SLURM_CONTAINER_TOOL:-podman}"
CONF=/etc/slurm/slurm.conf
MARK="# written by sleepkit .ci/slurm-up.sh"
NODE="$(hostname -s)"
source "$(dirname "$0")/lib.sh"

say() { echo "slurm-up: $*" >&2; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    if [ "$TOOL" = podman ]; then
        command -v podman >/dev/null || missing+=(podman)
        [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)   # podman run --init
    fi
    apt_install ${missing[@]+"${missing[@]}"}
}

# A daemon slurm-up started and that still runs (its pid file names a live process of that name).
running() {
    local pid
    pid="$(cat "$STATE/$1.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && grep -qx "$1" "/proc/$pid/comm" 2>/dev/null
}

cluster_answers() { sinfo -h -o %P >/dev/null 2>&1; }

CHANGED=0
put() {   # put FILE: write stdin to FILE if it differs (CHANGED=1 then)
    local text
    text="$(cat)"
    [ -f "$1" ] && [ "$(cat "$1")" = "$text" ] && return 0
    printf '%s\n' "$text" | $SUDO tee "$1" >/dev/null
    CHANGED=1
}

foreign_config() { [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; }

write_config() {
    local cpus mem
    cpus="$(nproc)"
    mem="$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)"   # slurmd drains a node that has less
    $SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGDIR"
    put "$CONF" <<EOF
$MARK
ClusterName=sleepkit
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log
MinJobAge=3600
KillWait=30
ReturnToService=2
NodeName=$NODE CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu2 Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    # a Count=2 line without files is refused ("count reported lower than configured"): one file per GPU
    put /etc/slurm/gres.conf <<EOF
$MARK
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
}

# start NAME CMD...: run CMD in its own session in the foreground of that session, record its pid.
start() {
    local name="$1"; shift
    if running "$name"; then say "$name already running (pid $(cat "$STATE/$name.pid"))"; return 0; fi
    $SUDO mkdir -p "$STATE"
    setsid "$@" </dev/null >>"$LOGDIR/$name.out" 2>&1 &
    echo $! | $SUDO tee "$STATE/$name.pid" >/dev/null
    say "started $name (pid $!)"
}

# munge's client retries a refused connection with a growing back-off (seconds): cut each try short.
munge_ok() { timeout 2 munge -n 2>/dev/null | timeout 2 unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then say "munge answers"; return 0; fi
    $SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge
    if [ ! -f /etc/munge/munge.key ]; then
        $SUDO dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        $SUDO chown munge:munge /etc/munge/munge.key && $SUDO chmod 400 /etc/munge/munge.key
    fi
    start munged munged --foreground --force
    wait_for "munge" munge_ok
}

# wait_for WHAT CONDITION: poll CONDITION every 0.2 s for at most WAIT_S.
wait_for() {
    local i
    for ((i = 0; i < WAIT_S * 5; i++)); do
        eval "$2" && return 0
        sleep 0.2
    done
    say "ERROR: $1 not ready within ${WAIT_S} s; see $LOGDIR/*.log and $LOGDIR/*.out"
    tail -n 10 "$LOGDIR"/slurm*.log >&2 || true
    exit 1
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1; }

wait_node_idle() {
    local i state
    for ((i = 0; i < WAIT_S * 5; i++)); do
        state="$(node_state)"
        case "$state" in
            idle | mixed | allocated) say "node $NODE is $state"; return 0 ;;
            *drain* | down* | fail*) $SUDO scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.2
    done
    say "ERROR: node $NODE is '${state:-not listed}' after ${WAIT_S} s; see $LOGDIR/slurmd.log and \`scontrol show node\`"
    tail -n 10 "$LOGDIR/slurmd.log" >&2 || true
    exit 1
}

# podman sets RLIMIT_NOFILE/NPROC above the current limits unless told otherwise; runc then fails with
# "error setting rlimit type 7: operation not permitted" where CAP_SYS_RESOURCE is missing (this sandbox).
podman_ulimits() {
    local f=/etc/containers/containers.conf.d/sleepkit-ci.conf caps nproc nofile
    caps="$(awk '/^CapEff:/ { print $2 }' /proc/self/status)"
    (( (16#$caps >> 24) & 1 )) && return 0
    [ -f "$f" ] && return 0
    nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
    { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768   # the highest runc could set here
    $SUDO mkdir -p "$(dirname "$f")"
    printf '%s\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
        "$MARK" "$nofile" "$nofile" "$nproc" "$nproc" | $SUDO tee "$f" >/dev/null
    say "wrote $f (no CAP_SYS_RESOURCE here)"
}

podman_gpus() {   # one CDI device per stand-in GPU, in gres.conf's order
    local f=/etc/cdi/sleepkit-test.yaml
    [ -f "$f" ] && return 0
    $SUDO mkdir -p /etc/cdi
    $SUDO tee "$f" >/dev/null <<EOF
$MARK
cdiVersion: "0.5.0"
kind: "sleepkit.test/gpu"
devices:
  - name: "0"
    containerEdits:
      deviceNodes: [{path: /dev/sleepkit-gpu0, hostPath: /dev/null}]
  - name: "1"
    containerEdits:
      deviceNodes: [{path: /dev/sleepkit-gpu1, hostPath: /dev/zero}]
EOF
    say "wrote $f (CDI devices for the stand-in GPUs)"
}

install_packages
start_munge
# (sinfo is not asked first: without a controller it retries for about 10 s)
if ! running slurmctld && { pgrep -x slurmctld >/dev/null || foreign_config; }; then
    say "using the Slurm cluster configured here (not started by slurm-up)"
else
    write_config
    if running slurmctld && [ "$CHANGED" = 1 ]; then say "configuration changed: scontrol reconfigure"; scontrol reconfigure; fi
    start slurmctld slurmctld -D
    wait_for "slurmctld" cluster_answers
    if pgrep -x slurmd >/dev/null && ! running slurmd; then
        say "a slurmd not started by slurm-up runs: using it"
    else
        start slurmd slurmd -D
    fi
fi
wait_node_idle
[ "$TOOL" = podman ] && { podman_ulimits; podman_gpus; }
say "$(sinfo --version) ready: $(sinfo -h -o '%P %a %D %G' | head -n 1)"
