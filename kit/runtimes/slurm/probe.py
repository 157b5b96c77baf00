"""kit doctor --runtime slurm: the client tools, the partition(s), GPU gres, the sbatch options, and a tiny job
that proves the results dir is shared (and that the kit or its image is usable on the node)."""
import os
import re
import shlex
import shutil
import time
import uuid
from pathlib import Path

import psutil

from kit.checks import Check
from kit.runtimes.common import KIT_ROOT
from kit.runtimes.slurm.client import (ENDED, FIELD, SlurmError, cancel, default_partition, first_line, queue_states,
                                       quiet, slurm)

TOOLS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
LOCAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "vfat", "ramfs"}


def doctor_checks(results_dir, runtime, probe_timeout=120.0):
    """Slurm client tools, partition(s) up, GPU gres, the sbatch options, and a tiny job that proves the
    results dir is shared (and that the kit or its image is usable on the node)."""
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return [Check("slurm tools", False, f"{', '.join(missing)} not on PATH",
                      "run kit on a Slurm login node, or install the Slurm client tools (Debian: slurm-client)")]
    checks = [Check("slurm tools", True, f"{quiet('sinfo', '--version')} ({', '.join(TOOLS)})")]
    try:
        partitions = (runtime.partition or default_partition() or "").split(",")
        checks += [check_partition(p) for p in partitions if p] or [
            Check("slurm partition", False, "no partition given and the cluster has no default",
                  "pass --slurm-partition or set KIT_SLURM_PARTITION (see `sinfo -s`)")]
        checks += [check_gpu_gres(p) for p in partitions if p]
        checks.append(check_submission(runtime))
        if all(c.ok for c in checks):
            checks += probe_checks(results_dir, runtime, probe_timeout)
    except SlurmError as e:
        checks.append(Check("slurm controller", False, str(e), "check `scontrol ping` and `sinfo`"))
    return checks


def check_partition(partition):
    r = slurm("scontrol", "-o", "show", "partition", partition, check=False)
    if r.returncode != 0 or not r.stdout.strip():
        known = slurm("sinfo", "-h", "-o", "%P", check=False).stdout.split()
        return Check("slurm partition", False, f"{partition}: no such partition",
                     f"pass --slurm-partition / KIT_SLURM_PARTITION with one of: {', '.join(known) or 'none'}")
    f = dict(FIELD.findall(r.stdout))
    ok = f.get("State") == "UP"
    return Check("slurm partition", ok, f"{partition}: {f.get('State')}, {f.get('TotalNodes')} node(s), "
                 f"MaxTime={f.get('MaxTime')}", f"partition {partition} is {f.get('State')}: ask the "
                 "administrators, or choose another partition (`sinfo -s`)")


def check_gpu_gres(partition):
    gres = slurm("sinfo", "-h", "-p", partition, "-o", "%G", check=False).stdout.split()
    gpu = [g for g in gres if re.match(r"gpu[:(]", g)]
    return Check("slurm gpu gres", bool(gpu), f"{partition}: gres {', '.join(gres) or 'none'}",
                 f"the nodes of {partition} have no gpu gres: choose a GPU partition (`sinfo -o '%P %G'`)")


def check_submission(runtime):
    """sbatch --test-only: the partition, account, time limit, GPU request and extra options are accepted."""
    r = slurm("sbatch", "--test-only", *runtime.directives(), "--wrap", "true", check=False)
    detail = first_line(r.stderr or r.stdout)
    return Check("slurm submission", r.returncode == 0, f"sbatch {' '.join(runtime.directives())}: {detail}",
                 "fix --slurm-partition/--slurm-account/--slurm-time/--slurm-args (or KIT_SLURM_*)")


def fs_type(path):
    """The filesystem type of the mount that holds path, or None."""
    path = str(Path(path).resolve())
    try:
        mounts = psutil.disk_partitions(all=True)
    except OSError:
        return None
    holding = [m for m in mounts if path == m.mountpoint or path.startswith(m.mountpoint.rstrip("/") + "/")]
    return max(holding, key=lambda m: len(m.mountpoint)).fstype if holding else None


def probe_script(results_dir, nonce, runtime):
    """A tiny job: does the node see the file written here, and can it run the workload (or its image)?"""
    d, q = str(results_dir), shlex.quote
    if runtime.container:
        test = (f'{runtime.container} image inspect {q(runtime.image)} >/dev/null 2>&1 && echo usable=ok '
                f'|| echo "usable={runtime.container} or the image {runtime.image} is not on the node"')
    else:
        test = (f'out="$(PYTHONPATH={q(str(KIT_ROOT))} {q(runtime.python)} -m kit.workload --help 2>&1)" '
                f'&& echo usable=ok || echo "usable=$(echo "$out" | tail -n 1)"')
    return f"""#!/bin/bash
d={q(d)}; n={nonce}
{{ echo "node=$(hostname -s)"
   echo "gpus=${{CUDA_VISIBLE_DEVICES-}}"
   [ "$(cat "$d/.kit-doctor-$n" 2>/dev/null)" = "$n" ] && echo sees_probe=yes || echo sees_probe=no
   {test}
}} >"$d/.kit-doctor-$n.tmp" && mv "$d/.kit-doctor-$n.tmp" "$d/.kit-doctor-$n.reply"
"""


def run_probe(results_dir, runtime, timeout):
    """Submit the probe job, wait for it (bounded), return (reply dict or None, job state)."""
    results_dir = Path(results_dir).expanduser().resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    nonce = uuid.uuid4().hex
    probe, reply = results_dir / f".kit-doctor-{nonce}", results_dir / f".kit-doctor-{nonce}.reply"
    probe.write_text(nonce)
    try:
        r = slurm("sbatch", "--parsable", "--job-name=sleepkit-doctor", "--output=/dev/null", "--time=1",
                  f"--chdir={results_dir}",
                  *runtime.directives(), stdin=probe_script(results_dir, nonce, runtime))
        job_id = r.stdout.strip().split(";")[0]
        deadline, state = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = (queue_states({job_id}) or {}).get(job_id)
            if state is None or state[0] in ENDED:
                break
            time.sleep(0.5)
        else:
            cancel([job_id], 60)
            return None, f"{state[0]} ({state[1]}) after {timeout:.0f} s, cancelled"
        seen_by = time.monotonic() + 5   # a shared filesystem may show another host's new file a moment later
        while not reply.exists() and time.monotonic() < seen_by:
            time.sleep(0.2)
        if not reply.exists():
            return None, state[0] if state else "ended"
        lines = reply.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line), state[0] if state else "ended"
    finally:
        for p in (probe, reply):
            p.unlink(missing_ok=True)


def judge_shared(results_dir, reply, job_state, fstype, nodes, here):
    """The rule: a job read a random file written here and we read the file it wrote; a local filesystem is
    shared only when the partition's one node is this host."""
    name, fix = "shared results dir", (f"put the results on a filesystem every node mounts (NFS, Lustre, GPFS, "
                                        f"...) and pass --results-dir; {results_dir} is on {fstype or 'an unknown fs'}")
    if reply is None:
        return Check(name, False, f"the probe job ({job_state}) left no reply in {results_dir}: the nodes do "
                                  "not see it (or the job never ran)", fix)
    if reply.get("sees_probe") != "yes":
        return Check(name, False, f"the probe job on {reply.get('node')} did not find the file written here "
                                  f"in {results_dir}: it is another folder there", fix)
    if fstype in LOCAL_FS and set(nodes) != {here}:
        return Check(name, False, f"{results_dir} is on a local {fstype} filesystem and the partition has the "
                                  f"nodes {','.join(sorted(nodes))}: the probe only reached {reply.get('node')}", fix)
    return Check(name, True, f"{results_dir} ({fstype}): a job on {reply.get('node')} read a file written here "
                             "and wrote one read here" + (" (one-node cluster: this host)" if set(nodes) == {here}
                                                          else ""))


def partition_nodes(partition):
    r = slurm("sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else []), check=False)
    return sorted(set(r.stdout.split()))


def probe_checks(results_dir, runtime, timeout):
    reply, state = run_probe(results_dir, runtime, timeout)
    nodes = partition_nodes(runtime.partition)
    checks = [judge_shared(Path(results_dir).expanduser().resolve(), reply, state, fs_type(results_dir),
                           nodes, os.uname().nodename.split(".")[0])]
    what = f"{runtime.container} image {runtime.image}" if runtime.container else f"kit.workload with {runtime.python}"
    usable = (reply or {}).get("usable")
    checks.append(Check("workload on the node", usable == "ok",
                        f"{what} on {(reply or {}).get('node', '?')}: {usable or 'not checked (no reply)'}",
                        "load the image on every node" if runtime.container else
                        f"the kit's folder {KIT_ROOT} must be on shared storage and {runtime.python} on the nodes "
                        "must have psutil (and vLLM)"))
    return checks
