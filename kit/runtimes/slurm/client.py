"""The Slurm client commands (sbatch, squeue, scancel, scontrol, sinfo, sacct), the kit's sbatch options, and
what the commands answer, parsed."""
import re
import shlex
import subprocess
import time

from kit.errors import BadInput, SlurmError

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
RESERVED = ("-o", "--output", "-e", "--error", "-J", "--job-name", "-D", "--chdir", "--comment",
            "--open-mode", "--wrap", "--parsable")
OPTIONS = {"partition": "KIT_SLURM_PARTITION", "account": "KIT_SLURM_ACCOUNT",
           "time_limit": "KIT_SLURM_TIME", "extra": "KIT_SLURM_ARGS"}
NAMES = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")      # a partition (list) or account
# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:minutes[:seconds]], or no limit
TIME = re.compile(r"(\d+-\d+|\d+)(:\d+){0,2}|-1|INFINITE|UNLIMITED", re.I)


def slurm_options(cli=None, config=None):
    """partition, account, time_limit, extra (sbatch args): the command line's (kit.cli reads KIT_SLURM_* into
    it), else the config file's."""
    given = [cli or {}, config or {}]
    out = {key: next((d[key] for d in given if d.get(key) not in (None, "", [], ())), None) for key in OPTIONS}
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


COMMENT = re.compile(r"sleepkit run=(\S+) arm=(\S+) repeat=(\d+)")


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

