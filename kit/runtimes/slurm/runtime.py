"""SlurmRuntime: submits each arm job's batch script (script.py), follows it (follow.py), cancels a run's jobs."""
import json
import shutil
import subprocess
import threading
from pathlib import Path

from kit import layout, sweep
from kit.layout import WORKLOAD_LOG as LOG
from kit.runtimes.base import Runtime, job_name
from kit.runtimes.common import KIT_ROOT, LABEL_RUN
from kit.runtimes.slurm import probe
from kit.runtimes.slurm.client import (SlurmError, cancel, cluster_name, default_partition, first_line, job_details,
                                       quiet, run_jobs, slurm, slurm_options)
from kit.runtimes.slurm.follow import JobStates, LogTail, SubmitOrder, exit_status, failure_line, follow
from kit.runtimes.slurm.script import batch_script

SCRIPT, RECORD = "job.sbatch", "slurm.json"
START_FAILED = 125                               # like `docker run`: the job could not be submitted
CONTAINERS = ("podman", "docker")
GPU_ACCESS = ("auto", "cdi", "toolkit", "env")


class SlurmRuntime(Runtime):
    name = "slurm"
    summary = "one batch job per arm"
    lanes_keep_gpu = False     # Slurm places every job: each job primes its own compile cache (--cache warm)
    uses_host_gpus = False     # ... on the GPUs it picks: the probe job (kit doctor) checks one
    dry_run_needs_runtime = True   # --dry-run prints a batch script
    part_name = "partition"

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
    def from_options(cls, options, on_build_line=print, config=None, **more):
        """The runtime for kit.options.RunOptions (slurm_* fields), KIT_SLURM_* and a config file's values."""
        cli = {"partition": options.slurm_partition, "account": options.slurm_account,
               "time_limit": options.slurm_time, "extra": options.slurm_args}
        container = None if options.slurm_container in (None, "", "none") else options.slurm_container
        access = options.gpu_access if options.gpu_access in GPU_ACCESS else "auto"
        return cls(**slurm_options(cli, config), container=container, image=options.image or None,
                   cache=options.cache, hf_cache=options.hf_cache, gpu_access=access, python=options.slurm_python,
                   **more)

    @classmethod
    def split(cls, options):
        """One run per partition of `--slurm-partition a,b` (or KIT_SLURM_PARTITION)."""
        parts = [p.strip() for p in options.slurm_partition.split(",") if p.strip()]
        if len(parts) < 2:
            return [("", options)]
        return [(p, options.with_(slurm_partition=p)) for p in parts]

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
        return batch_script(job, out_dir, self)

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
            seen = follow(job_id, tail, self.states, self.tail_s, on_line)
        finally:
            self.states.forget(job_id)
        try:
            details = job_details(job_id)
        except SlurmError as e:
            details = {"state": "UNKNOWN", "reason": str(e)}
        record.update({k: v for k, v in details.items() if v is not None}, gpus=seen["gpus"], ended=layout.now())
        layout.write_json(out_dir / RECORD, record)
        line = failure_line(job_id, details, seen["workload_said"], job.run_id,
                            "sweep" if job.unit.startswith(sweep.UNIT_PREFIX) else "run")
        if line:
            say(line)
        return exit_status(details.get("state"), details.get("exit_code"))

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

    def doctor_checks(self, options, results_dir, probe_timeout=120.0):
        """Every check of `kit doctor --runtime slurm` (kit.checks.Check objects)."""
        return probe.doctor_checks(results_dir, self, probe_timeout)

    def plan_order(self, jobs):
        """The (run id, unit, repeat) of the jobs about to run, in the order they should be submitted."""
        self.order.plan(jobs)

    def job_record(self, job, out_dir):
        """For the manifest: the job's slurm.json (job id, node, state, reason, exit code, GPUs)."""
        path = Path(out_dir) / RECORD
        return {"slurm": json.loads(path.read_text()) if path.exists() else None}

