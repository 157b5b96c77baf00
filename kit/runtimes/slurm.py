"""Slurm runtime: one batch job per arm and repeat (sbatch), followed through squeue/scontrol.

Each job's batch script is written to out_dir/job.sbatch and asks for one GPU (--gres=gpu:1, or
--gpus=1). On the node it runs `python3 -m kit.workload <argv> --out <out_dir>` either directly (the
node's python3 with vLLM installed, PYTHONPATH = this kit's folder, the compile cache of --cache) or in
the kit's image through podman or docker (host network and IPC, the job's GPUs as CDI devices or
`--gpus`, out_dir bind-mounted at /sleepkit/out). Slurm writes the job's output to out_dir/workload.log,
so out_dir must be on storage the nodes share: doctor_checks() proves it with a tiny job.

run_arm() follows its job: new lines of workload.log go to on_line as they come, the job's state is read
with one `squeue` for all followed jobs at most every poll_s seconds, and the end state with
`scontrol show job` (sacct when the controller has forgotten the job). A job Slurm ended (TIMEOUT,
CANCELLED, PREEMPTED, NODE_FAIL, ...) fails its arm with an `arm failed: ...` line naming the state and
reason. out_dir/slurm.json records the job id, node, state, reason, exit code and the GPUs the job saw.
stop_run() cancels every job of the run (scancel) and waits until squeue no longer lists them.

Containers: podman is the HPC-style path (daemonless; the job's GPUs enter as CDI devices
`nvidia.com/gpu=<SLURM_JOB_GPUS index>`, made by `nvidia-ctk cdi generate`); docker works the same way
with `--gpus device=<ids>` (NVIDIA Container Toolkit). The container's processes are not the job's
(podman's conmon / dockerd own them), so when Slurm ends the job (scancel, time limit) its SIGTERM reaches
`podman|docker run`, which passes it on, and the script's trap runs `stop`; `--rm` removes the container.
Slurm only SIGKILLs the script KillWait (default 30 s) later, after stop_timeout (10 s) has passed.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

from kit import layout
from kit.checks import Check
from kit.errors import BadInput
from kit.layout import WORKLOAD_LOG as LOG
from kit.runtimes import Runtime, job_name
from kit.runtimes.docker import COMPILE_CACHE_VOLUME, HF_CACHE_TARGET, LABEL_RUN, OUT, container_spec
from kit.runtimes.local import KIT_ROOT
from kit.workload.compilecache import cache_env
from kit.workload import progress

SHARED_CACHE = "$HOME/.cache/sleepkit/compile"  # --cache warm/shared, direct: on the node, like local.py's
CACHE_SLOT = "gpu${SLURM_JOB_GPUS:--any}"        # one cache per GPU, as local.cache_slot (why: there)
SCRIPT, RECORD = "job.sbatch", "slurm.json"
MARK = "sleepkit-slurm:"                         # the job's first output line: node and GPUs
START_FAILED = 125                               # like `docker run`: the job could not be submitted
CONTAINERS = ("podman", "docker")
GPU_ACCESS = ("auto", "cdi", "toolkit", "env")
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
RESUME = "resume the run with `kit run --resume {run}`"
HINTS = {"TIMEOUT": "raise the time limit (--slurm-time / KIT_SLURM_TIME) and " + RESUME,
         "CANCELLED": "the job was cancelled (scancel); " + RESUME,
         "PREEMPTED": "a higher-priority job took the node; " + RESUME,
         "NODE_FAIL": "the node failed; " + RESUME,
         "BOOT_FAIL": "the node failed to boot; " + RESUME,
         "OUT_OF_MEMORY": "ask for more memory (--slurm-args='--mem=64G') and " + RESUME,
         "DEADLINE": "the job reached its deadline; " + RESUME}
RESERVED = ("-o", "--output", "-e", "--error", "-J", "--job-name", "-D", "--chdir", "--comment",
            "--open-mode", "--wrap", "--parsable")
OPTIONS = {"partition": "KIT_SLURM_PARTITION", "account": "KIT_SLURM_ACCOUNT",
           "time_limit": "KIT_SLURM_TIME", "extra": "KIT_SLURM_ARGS"}
NAMES = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")      # a partition (list) or account
# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:minutes[:seconds]], or no limit
TIME = re.compile(r"(\d+-\d+|\d+)(:\d+){0,2}|-1|INFINITE|UNLIMITED", re.I)


class SlurmError(RuntimeError):
    """A Slurm command failed; the message says what to do."""


def slurm_options(cli=None, env=os.environ, config=None):
    """partition, account, time_limit, extra (sbatch args): command line > KIT_SLURM_* > config file."""
    cli, config = cli or {}, config or {}
    out = {}
    for key, var in OPTIONS.items():
        out[key] = next((v for v in (cli.get(key), env.get(var), config.get(key)) if v not in (None, "", [], ())),
                        None)
    extra = out["extra"] or []
    out["extra"] = shlex.split(extra) if isinstance(extra, str) else [str(a) for a in extra]
    taken = [a for a in out["extra"] if a.split("=", 1)[0] in RESERVED]
    if taken:
        raise BadInput(f"--slurm-args must not set {taken[0]}: the kit sets it for every job",
                       "leave it out of --slurm-args / KIT_SLURM_ARGS")
    check_values(out)
    return out


def check_values(out):
    """Each value becomes an #SBATCH line of its own: one that could end it early (a newline) or that Slurm
    would refuse is refused here, naming the option."""
    for key, pattern in (("partition", NAMES), ("account", NAMES), ("time_limit", TIME)):
        if out[key] is not None and not pattern.fullmatch(str(out[key])):
            name = f"--slurm-{'time' if key == 'time_limit' else key} (or {OPTIONS[key]})"
            hint = ("use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 1:00:00)" if key == "time_limit"
                    else "use letters, digits, '_', '.' and '-' (partitions: comma-separated)")
            raise BadInput(f"{name} {out[key]!r} is not a Slurm {'time limit' if key == 'time_limit' else key}", hint)
    odd = next((a for a in out["extra"] if not a.isprintable()), None)
    if odd is not None:
        raise BadInput(f"--slurm-args (or KIT_SLURM_ARGS) {odd!r} holds a newline or control character",
                       "give each sbatch option on one line")


def job_comment(job):
    """What finds a job of the run in squeue (COMMENT); job: an ArmJob (Slurm, not the kit, picks its GPU)."""
    return f"sleepkit run={job.run_id} arm={job.unit} repeat={job.repeat}"


def is_last_line(line):
    """The workload's last progress line (kit.workload.progress): `done  total ...`."""
    step = progress.parse(line)
    return step is not None and step["state"] == "done" and step["kind"] == "total"


COMMENT = re.compile(r"sleepkit run=(\S+) arm=(\S+) repeat=(\d+)")


# -- Slurm commands ---------------------------------------------------------------------------------

def slurm(*args, timeout=60, check=True, stdin=None):
    """Run a Slurm client command; SlurmError with its first error line when it fails (check). In a session
    of its own: the terminal's Ctrl-C is kit run's to handle, and must not kill an sbatch that has submitted
    its job but not yet printed the id (the job would run with no record of it), nor the stop path's scancel."""
    try:
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=stdin,
                           start_new_session=True)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]} is not on PATH: run kit on a Slurm login node "
                         "(or install the Slurm client tools)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(args[:2])}` did not answer within {timeout} s: is slurmctld up? "
                         "(`scontrol ping`)") from None
    if check and r.returncode != 0:
        raise SlurmError(f"`{' '.join(args[:2])}` failed: {first_line(r.stderr or r.stdout)}")
    return r


def first_line(text):
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "no output")


def queue_states(ids):
    """{job id: (state, reason, node)} for the ids squeue still knows (finished ones too); None if it failed."""
    if not ids:
        return {}
    r = slurm("squeue", "-h", "-t", "all", "-j", ",".join(sorted(ids)), "-o", "%i|%T|%r|%N", check=False)
    if r.returncode != 0:
        return {} if "Invalid job id" in r.stderr else None
    states = {}
    for line in r.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            states[parts[0]] = tuple(parts[1:])
    return states


def run_jobs(run_id, arm=None, repeat=None):
    """Ids of this user's queued (pending/running/completing) jobs of a run, found by their comment."""
    r = slurm("squeue", "--me", "-h", "-o", "%i|%k")
    ids = []
    for line in r.stdout.splitlines():
        job_id, _, comment = line.strip().partition("|")
        m = COMMENT.fullmatch(comment.strip())
        if m and m[1] == run_id and arm in (None, m[2]) and repeat in (None, int(m[3])):
            ids.append(job_id)
    return ids


def cancel(ids, timeout=120.0, poll_s=0.5):
    """scancel the jobs and wait until squeue no longer lists them (they have left the node)."""
    ids = sorted(set(ids))
    if not ids:
        return
    slurm("scancel", *ids, check=False)    # a job that already ended is not an error here
    deadline = time.monotonic() + timeout
    while True:
        r = slurm("squeue", "-h", "-j", ",".join(ids), "-o", "%i", check=False)
        left = r.stdout.split() if r.returncode == 0 else ([] if "Invalid job id" in r.stderr else ids)
        if not left:
            return
        if time.monotonic() > deadline:
            raise SlurmError(f"Slurm jobs {','.join(left)} are still listed {timeout:.0f} s after scancel: "
                             f"check `squeue -j {','.join(left)}` (a node may need an administrator)")
        time.sleep(poll_s)


FIELD = re.compile(r"(?:^|\s)(\w+)=(\S*)")


def job_details(job_id):
    """The end record of a job: scontrol while slurmctld remembers it (MinJobAge), else sacct."""
    r = slurm("scontrol", "-o", "show", "job", job_id, check=False)
    if r.returncode == 0 and r.stdout.strip():
        f = dict(FIELD.findall(r.stdout))
        return {"state": f.get("JobState"), "reason": f.get("Reason"), "exit_code": f.get("ExitCode"),
                "node": f.get("NodeList"), "run_time": f.get("RunTime"), "time_limit": f.get("TimeLimit"),
                "start": f.get("StartTime"), "end": f.get("EndTime"), "partition": f.get("Partition")}
    line = first_line(quiet("sacct", "-X", "-n", "-P", "-j", job_id, "-o",
                            "State,Reason,ExitCode,NodeList,Elapsed,Timelimit"))
    if line.count("|") == 5:
        state, reason, code, node, elapsed, limit = line.split("|")
        return {"state": state.split()[0], "reason": reason, "exit_code": code, "node": node,
                "run_time": elapsed, "time_limit": limit}
    return {"state": "UNKNOWN", "reason": "Slurm forgot the job before its end was read (MinJobAge; "
                                          "no accounting)"}


def exit_status(state, exit_code):
    """The arm's exit status: the job's exit code, 128 + signal, or 1 for a job that did not complete."""
    code, _, sig = (exit_code or "0:0").partition(":")
    code, sig = int(code or 0) if code.isdigit() else 1, int(sig) if sig.isdigit() else 0
    if state == "COMPLETED":
        return code
    return code or (128 + sig if sig else 1)


def failure_line(job_id, d, workload_said, run_id="RUN_ID"):
    """The `arm failed:` line for a job that did not complete, or None when the workload said why itself."""
    state = d.get("state") or "UNKNOWN"
    if state == "COMPLETED" or (state == "FAILED" and workload_said):
        return None
    where = f" on {d['node']}" if d.get("node") not in (None, "", "(null)", "None") else ""
    after = f" after {d['run_time']}" if d.get("run_time") else ""
    hint = HINTS.get(state, f"see {LOG} and `scontrol show job {job_id}`").format(run=run_id)
    return (f"arm failed: Slurm job {job_id} ended {state} (reason {d.get('reason') or 'None'}, "
            f"exit {d.get('exit_code') or '?'}){where}{after}: {hint}")


# -- following a job --------------------------------------------------------------------------------

class JobStates:
    """States of the followed jobs: one `squeue` call for all of them, at most every poll_s seconds."""

    def __init__(self, poll_s):
        self.poll_s = poll_s
        self.lock = threading.Lock()
        self.ids, self.states, self.read_at = set(), {}, float("-inf")

    def follow(self, job_id):
        with self.lock:
            self.ids.add(job_id)
            self.read_at = float("-inf")      # read at once: the new job is not in the last answer

    def forget(self, job_id):
        with self.lock:
            self.ids.discard(job_id)

    def get(self, job_id, max_age=None):
        """(state, reason, node), None if squeue does not list the job, or 'error' if squeue failed.
        max_age: read again if the last answer is older (a job about to end is asked about more often)."""
        with self.lock:
            if time.monotonic() - self.read_at >= (self.poll_s if max_age is None else min(max_age, self.poll_s)):
                try:
                    states = queue_states(self.ids)
                except SlurmError:
                    states = None
                self.read_at = time.monotonic()
                if states is None:
                    return "error"
                self.states = states
            return self.states.get(job_id)


class LogTail:
    """New complete lines of a file that another process appends to (the job's output)."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.pending = b""

    def lines(self, final=False):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        *done, self.pending = (self.pending + data).split(b"\n")
        if final and self.pending:
            done, self.pending = done + [self.pending], b""
        return [line.decode("utf-8", "replace") for line in done]


def parse_mark(line):
    """The job's `sleepkit-slurm: job=.. node=.. CUDA_VISIBLE_DEVICES=..` line -> dict, else None."""
    if not line.startswith(MARK):
        return None
    return dict(re.findall(r"(\w+)=(\S*)", line[len(MARK):]))


# -- the batch script -------------------------------------------------------------------------------

WAIT = """\
child=$!
wait "$child"; status=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done   # a signal interrupted wait
exit "$status"
"""


def env_lines(env):
    return [f"export {k}={shlex.quote(str(v))}" for k, v in sorted(env.items())]


def direct_body(job, out_dir, python, cache):
    """The workload on the node itself, like --runtime local (the node's python3 and vLLM)."""
    lines = [f"export PYTHONPATH={shlex.quote(str(KIT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} PYTHONUNBUFFERED=1"]
    lines += env_lines(job.env)
    if cache != "cold":   # cold: the workload gives every server start empty caches of its own
        lines.append(f'CACHE="{SHARED_CACHE}/${{SLURMD_NODENAME:-node}}-{CACHE_SLOT}"')   # $HOME may be shared
        lines.append("export " + " ".join(f'{k}="{v}"' for k, v in cache_env("$CACHE").items()))
    lines.append(f"trap 'echo \"{MARK} SIGTERM: waiting for the workload to stop its servers\"' TERM")
    cmd = [python, "-m", "kit.workload", *job.argv, "--out", str(out_dir)]
    lines.append(" ".join(shlex.quote(c) for c in cmd) + " &")
    return lines


def gpu_lines(tool, access, cdi_kind):
    """Bash that sets GPU_ARGS (the container tool's GPU options) and VISIBLE (CUDA_VISIBLE_DEVICES inside)."""
    if access == "auto":
        access = "cdi" if tool == "podman" else "toolkit"
    if access == "env":   # the tool exposes the GPUs itself: pass Slurm's view through unchanged
        return ["GPU_ARGS=()", 'VISIBLE="${CUDA_VISIBLE_DEVICES-}"']
    if access == "cdi":
        each = f'GPU_ARGS+=(--device "{cdi_kind}=$i")'
    elif tool == "docker":
        each = 'GPU_ARGS=(--gpus "device=${SLURM_JOB_GPUS}")'
    else:
        raise ValueError(f"{tool} cannot take the GPUs with {access!r}: use cdi or env")
    return ["GPU_ARGS=(); n=0",
            f'for i in ${{SLURM_JOB_GPUS//,/ }}; do {each}; n=$((n + 1)); done',
            'VISIBLE="$(seq -s, 0 $((n - 1)))"   # the container sees only the job\'s GPUs, from 0']


def volume(mount):
    """A mount of a container spec as a `-v` value for podman or docker run; the compile cache volume (the
    only volume) is the one of the job's GPU, which Slurm names only when the job starts."""
    if mount["type"] == "volume":
        return f'"{COMPILE_CACHE_VOLUME}-{CACHE_SLOT}:{mount["target"]}"'
    return shlex.quote(f"{mount['source']}:{mount['target']}" + (":ro" if mount["read_only"] else ""))


def container_body(job, out_dir, tool, image, cache, hf_cache, access, cdi_kind, stop_timeout):
    """The workload in the kit's image: the Docker runtime's container (kit.runtimes.docker.container_spec),
    run by podman or docker in the job, with the results bound in and the GPUs Slurm gave the job."""
    spec = container_spec(job, image, None, hf_cache, cache)
    name = spec["name"]
    hf = next(m["source"] for m in spec["mounts"] if m["target"] == HF_CACHE_TARGET)
    q = shlex.quote
    opts = [f"--name {q(name)}", "--rm", "--network host", "--ipc host", "--init"]
    opts += [f"--label {q(k + '=' + v)}" for k, v in spec["labels"].items()] + ['--label "sleepkit.slurm_job=$SLURM_JOB_ID"']
    opts += [f"-v {q(f'{out_dir}:{OUT}')}"] + [f"-v {volume(m)}" for m in spec["mounts"]]
    opts += [f"-e {q(k + '=' + v)}" for k, v in sorted(spec["environment"].items())]
    opts += ['-e "CUDA_VISIBLE_DEVICES=$VISIBLE"', '${HF_TOKEN:+--env HF_TOKEN}', '${GPU_ARGS[@]+"${GPU_ARGS[@]}"}']
    command = " ".join(q(a) for a in spec["command"])
    return [f"{tool} rm -f {q(name)} >/dev/null 2>&1 || true   # left over from an interrupted attempt",
            *gpu_lines(tool, access, cdi_kind),
            f"mkdir -p {q(hf)}",
            # Slurm's SIGTERM (scancel, time limit) reaches `run`, which passes it on; stop makes sure
            f"trap '{tool} stop -t {stop_timeout} {q(name)} >/dev/null 2>&1' TERM",
            f"{tool} run " + " \\\n    ".join(opts) + f" \\\n    {q(image)} {command} &"]


# -- the runtime ------------------------------------------------------------------------------------

class SubmitOrder:
    """Jobs are submitted in the planned order (longest first), since Slurm starts them in submission
    order when its priorities tie: a job waits (bounded) until the ones planned before it are submitted."""

    def __init__(self, wait_s=60.0):
        self.cv, self.keys, self.done, self.wait_s = threading.Condition(), [], set(), wait_s

    def plan(self, keys):
        with self.cv:
            self.keys, self.done = list(keys), set()

    def wait_turn(self, key):
        with self.cv:
            before = self.keys[:self.keys.index(key)] if key in self.keys else []
            self.cv.wait_for(lambda: self.done.issuperset(before), self.wait_s)

    def mark(self, key):
        with self.cv:
            self.done.add(key)
            self.cv.notify_all()


class SlurmRuntime(Runtime):
    name = "slurm"
    lanes_keep_gpu = False     # Slurm places every job: each job primes its own compile cache (--cache warm)

    def __init__(self, partition=None, account=None, time_limit=None, extra=(), gpu_request="gres",
                 container=None, image=None, python="python3", cache="warm", hf_cache="~/.cache/huggingface",
                 gpu_access="auto", cdi_kind="nvidia.com/gpu", poll_s=5.0, tail_s=0.5, stop_timeout=10,
                 cancel_timeout=180.0):
        """container None: the workload runs directly on the node; 'podman' | 'docker': in `image`."""
        if gpu_request not in ("gres", "gpus"):
            raise ValueError(f"gpu_request must be 'gres' (--gres=gpu:1) or 'gpus' (--gpus=1), not {gpu_request!r}")
        if container not in (None, *CONTAINERS):
            raise ValueError(f"container must be none, podman or docker, not {container!r}")
        if container and not image:
            raise ValueError(f"--slurm-container {container} needs --image: a kit image present on every node")
        if gpu_access not in GPU_ACCESS:
            raise ValueError(f"gpu_access must be one of {', '.join(GPU_ACCESS)}, not {gpu_access!r}")
        self.partition, self.account, self.time_limit = partition, account, time_limit
        self.extra, self.gpu_request = list(extra or []), gpu_request
        self.container, self.image, self.python, self.cache, self.hf_cache = container, image, python, cache, hf_cache
        self.gpu_access, self.cdi_kind = gpu_access, cdi_kind
        self.tail_s, self.stop_timeout, self.cancel_timeout = tail_s, stop_timeout, cancel_timeout
        self.states = JobStates(poll_s)
        self.order = SubmitOrder()
        self.lock = threading.Lock()
        self.jobs = {}          # run id -> {job id: job name} submitted by this runtime
        self.stopping = set()   # run ids stop_run was called for: no more submissions

    @classmethod
    def from_options(cls, options, env=os.environ, config=None, **more):
        """The runtime for kit.options.RunOptions (slurm_* fields), KIT_SLURM_* and a config file's values."""
        cli = {"partition": options.slurm_partition, "account": options.slurm_account,
               "time_limit": options.slurm_time, "extra": options.slurm_args}
        container = None if options.slurm_container in (None, "", "none") else options.slurm_container
        access = options.gpu_access if options.gpu_access in GPU_ACCESS else "auto"
        return cls(**slurm_options(cli, env, config), container=container, image=options.image or None,
                   cache=options.cache, hf_cache=options.hf_cache, gpu_access=access, python=options.slurm_python,
                   **more)

    # -- submission -----------------------------------------------------------------------------
    def directives(self):
        """The sbatch options every arm job gets (and the doctor's probe job)."""
        gpu = "--gres=gpu:1" if self.gpu_request == "gres" else "--gpus=1"
        opts = [gpu, "--no-requeue"]   # preemption or a node failure fails the arm; --resume redoes it
        opts += [f"--partition={self.partition}"] if self.partition else []
        opts += [f"--account={self.account}"] if self.account else []
        opts += [f"--time={self.time_limit}"] if self.time_limit else []
        return opts + self.extra

    def batch_script(self, job, out_dir):
        """The batch script of one arm job (what --dry-run prints); nothing is submitted."""
        out_dir = Path(out_dir).resolve()
        output = str(out_dir / LOG).replace("%", "%%")    # sbatch expands %j, %x, ... in --output
        head = [f"--job-name={job_name(job)}", f"--comment={job_comment(job)}", f"--output={output}",
                "--open-mode=append", f"--chdir={out_dir}", *self.directives()]
        odd = next((h for h in head if not h.isprintable()), None)
        if odd is not None:      # it would end its #SBATCH line and start another
            raise BadInput(f"sbatch option {odd!r} holds a newline or control character",
                           "use a results folder and Slurm options without them")
        mode = f"in {self.image} with {self.container}" if self.container else f"directly with the node's {self.python}"
        lines = ["#!/bin/bash"] + [f"#SBATCH {shlex.quote(h)}" for h in head] + [
            f"# sleepkit: arm {job.unit}, repeat {job.repeat} of run {job.run_id}; the workload runs {mode}.",
            "# Results go straight into --chdir: it must be on storage the nodes share (kit doctor checks).",
            "set -u",
            f'echo "{MARK} job=$SLURM_JOB_ID node=${{SLURMD_NODENAME:-$(hostname -s)}} '
            f'CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-}} SLURM_JOB_GPUS=${{SLURM_JOB_GPUS-}}"']
        if self.container:
            lines += container_body(job, out_dir, self.container, self.image, self.cache, self.hf_cache,
                                    self.gpu_access, self.cdi_kind, self.stop_timeout)
        else:
            lines += direct_body(job, out_dir, self.python, self.cache)
        return "\n".join(lines) + "\n" + WAIT

    def _submit(self, job, script):
        """sbatch the script; the job id. Holds the lock so stop_run never misses a job being submitted."""
        with self.lock:
            if job.run_id in self.stopping:
                raise SlurmError("the run is being stopped; not submitted")
            r = slurm("sbatch", "--parsable", str(script), check=False)
            if r.returncode != 0:
                raise SlurmError(f"sbatch refused the job: {first_line(r.stderr)}; "
                                 "check the options with `kit doctor --runtime slurm`")
            job_id = r.stdout.strip().split(";")[0]
            self.jobs.setdefault(job.run_id, {})[job_id] = job_name(job)
        return job_id

    def run_arm(self, job, out_dir, on_line):
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        log = out_dir / LOG

        def say(line):   # after the job: Slurm has closed workload.log
            with open(log, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            on_line(line)

        script = out_dir / SCRIPT
        script.write_text(self.batch_script(job, out_dir))
        record = {"job_name": job_name(job), "script": SCRIPT, "sbatch_options": self.directives(),
                  "container": self.container, "image": self.image}
        key = (job.run_id, job.unit, job.repeat)
        self.order.wait_turn(key)
        try:
            cancel(run_jobs(job.run_id, job.unit, job.repeat), self.cancel_timeout)   # an earlier attempt's
            tail = LogTail(log)      # from here on, what workload.log gets is this job's
            job_id = self._submit(job, script)
        except SlurmError as e:
            layout.write_json(out_dir / RECORD, dict(record, job_id=None, state="NOT_SUBMITTED", reason=str(e)))
            say(f"arm failed: {e}")
            return START_FAILED
        finally:
            self.order.mark(key)
        record.update(job_id=job_id, submitted=layout.now())
        layout.write_json(out_dir / RECORD, record)
        on_line(f"slurm: submitted job {job_id} ({job_name(job)})")
        self.states.follow(job_id)
        try:
            seen = self._follow(job_id, tail, on_line)
        finally:
            self.states.forget(job_id)
        try:
            details = job_details(job_id)
        except SlurmError as e:
            details = {"state": "UNKNOWN", "reason": str(e)}
        record.update({k: v for k, v in details.items() if v is not None}, gpus=seen["gpus"], ended=layout.now())
        layout.write_json(out_dir / RECORD, record)
        line = failure_line(job_id, details, seen["workload_said"], job.run_id)
        if line:
            say(line)
        return exit_status(details.get("state"), details.get("exit_code"))

    def _follow(self, job_id, tail, on_line):
        """Stream the job's output and report state changes until the job has ended."""
        seen, last, missing, said, ending = {}, None, 0, False, False
        while True:
            for line in tail.lines():
                seen = parse_mark(line) or seen
                said = said or "arm failed:" in line
                ending = ending or is_last_line(line)     # the workload has finished: the job ends now
                on_line(line)
            state = self.states.get(job_id, max_age=2 * self.tail_s if ending else None)
            if state == "error" and last != "error":
                on_line(f"slurm: squeue does not answer; still following job {job_id}")
                last = "error"
            missing = missing + 1 if state is None else 0
            if state not in (None, "error") and state[:2] != last:
                last = state[:2]
                where = f" on {state[2]}" if state[2] else ""
                on_line(f"slurm: job {job_id} {state[0]}" + (f" ({state[1]})" if state[1] != "None" else "") + where)
            if (state not in (None, "error") and state[0] in ENDED) or missing >= 3:
                break
            time.sleep(self.tail_s)
        for line in tail.lines(final=True):
            seen = parse_mark(line) or seen
            said = said or "arm failed:" in line
            on_line(line)
        return {"gpus": {k: seen[k] for k in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS") if k in seen},
                "workload_said": said}

    # -- stopping -------------------------------------------------------------------------------
    def stop_run(self, run_id):
        """Cancel every job of the run (submitted here, or found in squeue by its comment), wait until squeue
        no longer lists them, and remove any container of theirs left on this host. Returns the job ids."""
        with self.lock:
            self.stopping.add(run_id)
            ids = set(self.jobs.get(run_id, {}))
        try:
            ids |= set(run_jobs(run_id))
        except SlurmError:
            pass            # the controller does not answer: cancel() says so, for the ids known here
        cancel(ids, self.cancel_timeout)
        self.remove_containers(run_id)
        return sorted(ids)

    def remove_containers(self, run_id):
        """Containers of the run on this host (the batch script's trap stops them on the nodes)."""
        if not self.container or not shutil.which(self.container):
            return []
        r = subprocess.run([self.container, "ps", "-a", "-q", "--filter", f"label={LABEL_RUN}={run_id}"],
                           capture_output=True, text=True, timeout=60)
        ids = r.stdout.split()
        if ids:
            subprocess.run([self.container, "rm", "-f", *ids], capture_output=True, timeout=120)
        return ids

    def describe(self):
        return {"name": self.name, "slurm_version": quiet("sinfo", "--version") or None, "cluster": cluster_name(),
                "partition": self.partition or default_partition(), "sbatch_options": self.directives(),
                "mode": self.container or "direct", "image": self.image, "gpu_access": self.gpu_access if
                self.container else None, "python": None if self.container else self.python,
                "kit_root": None if self.container else str(KIT_ROOT), "cache": self.cache}

    def doctor_checks(self, results_dir, probe_timeout=120.0):
        """Every check of `kit doctor --runtime slurm` (kit.doctor.Check objects)."""
        return doctor_checks(results_dir, self, probe_timeout)

    def plan_order(self, jobs):
        """The (run id, unit, repeat) of the jobs about to run, in the order they should be submitted."""
        self.order.plan(jobs)

    def job_record(self, job, out_dir):
        """For the manifest: the job's slurm.json (job id, node, state, reason, exit code, GPUs)."""
        path = Path(out_dir) / RECORD
        return {"slurm": json.loads(path.read_text()) if path.exists() else None}


def quiet(*args):
    """A Slurm command's output, or '' when it is missing or fails (for the manifest, --dry-run)."""
    try:
        r = slurm(*args, timeout=20, check=False)
    except SlurmError:
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def cluster_name():
    m = re.search(r"^ClusterName\s*=\s*(\S+)", quiet("scontrol", "show", "config"), re.M)
    return m[1] if m else None


def default_partition():
    return next((p[:-1] for p in quiet("sinfo", "-h", "-o", "%P").split() if p.endswith("*")), None)


# -- kit doctor --runtime slurm -----------------------------------------------------------------------

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
    """The filesystem type of the mount that holds path (from /proc/mounts), or None."""
    path, best = str(Path(path).resolve()), (None, -1)
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) > 2:
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best[1]:
                best = (parts[2], len(mnt))
    return best[0]


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
