"""Following a submitted job: its output as it comes, its state from squeue, its end from scontrol or sacct,
and what the arm's status and `arm failed:` line are."""
import re
import threading
import time
from pathlib import Path

from kit.layout import WORKLOAD_LOG as LOG
from kit.runtimes.slurm.client import ENDED, SlurmError, queue_states
from kit.runtimes.slurm.script import MARK
from kit.workload import progress

RESUME = "resume the run with `kit {command} --resume {run}`"
HINTS = {"TIMEOUT": "raise the time limit (--slurm-time / KIT_SLURM_TIME) and " + RESUME,
         "CANCELLED": "the job was cancelled (scancel); " + RESUME,
         "PREEMPTED": "a higher-priority job took the node; " + RESUME,
         "NODE_FAIL": "the node failed; " + RESUME,
         "BOOT_FAIL": "the node failed to boot; " + RESUME,
         "OUT_OF_MEMORY": "ask for more memory (--slurm-args='--mem=64G') and " + RESUME,
         "DEADLINE": "the job reached its deadline; " + RESUME}


def is_last_line(line):
    """The workload's last progress line (kit.workload.progress): `done  total ...`."""
    step = progress.parse(line)
    return step is not None and step["state"] == "done" and step["kind"] == "total"


def exit_status(state, exit_code):
    """The arm's exit status: the job's exit code, 128 + signal, or 1 for a job that did not complete."""
    code, _, sig = (exit_code or "0:0").partition(":")
    code, sig = int(code or 0) if code.isdigit() else 1, int(sig) if sig.isdigit() else 0
    if state == "COMPLETED":
        return code
    return code or (128 + sig if sig else 1)


def failure_line(job_id, d, workload_said, run_id="RUN_ID", command="run"):
    """The `arm failed:` line for a job that did not complete, or None when the workload said why itself.
    command: "sweep" for a job of a sweep run (`kit sweep --resume` finishes it)."""
    state = d.get("state") or "UNKNOWN"
    if state == "COMPLETED" or (state == "FAILED" and workload_said):
        return None
    where = f" on {d['node']}" if d.get("node") not in (None, "", "(null)", "None") else ""
    after = f" after {d['run_time']}" if d.get("run_time") else ""
    hint = HINTS.get(state, f"see {LOG} and `scontrol show job {job_id}`").format(run=run_id, command=command)
    return (f"arm failed: Slurm job {job_id} ended {state} (reason {d.get('reason') or 'None'}, "
            f"exit {d.get('exit_code') or '?'}){where}{after}: {hint}")


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


def follow(job_id, tail, states, tail_s, on_line):
    """Stream the job's output (tail: a LogTail of its workload.log) to on_line and report its state changes (states:
    JobStates) until the job has ended; the GPUs it saw, and whether the workload said why it failed."""
    seen, last, missing, said, ending = {}, None, 0, False, False
    while True:
        for line in tail.lines():
            seen = parse_mark(line) or seen
            said = said or "arm failed:" in line
            ending = ending or is_last_line(line)     # the workload has finished: the job ends now
            on_line(line)
        state = states.get(job_id, max_age=2 * tail_s if ending else None)
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
        time.sleep(tail_s)
    for line in tail.lines(final=True):
        seen = parse_mark(line) or seen
        said = said or "arm failed:" in line
        on_line(line)
    return {"gpus": {k: seen[k] for k in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS") if k in seen},
            "workload_said": said}
