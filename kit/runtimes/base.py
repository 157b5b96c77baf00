"""The runtime contract (class Runtime, with its defaults), the job a runtime runs, and the lanes jobs run on."""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from kit import gpus


@dataclass
class ArmJob:
    run_id: str
    unit: str                   # the folder name: arm, or arm@script for a seed variant
    repeat: int
    argv: list                  # ArmOptions.to_argv(): after `python3 -m kit.workload`, without --out
    gpu: object = None          # kit.gpus.Gpu of this job's lane, or None (no GPU chosen: the runtime's default)
    env: dict = field(default_factory=dict)          # extra environment for the workload
    model_paths: list = field(default_factory=list)  # local model dirs that must be visible (mounted ro)


@dataclass(frozen=True)
class Lane:
    label: str               # "gpu 0", "gpu GPU-ab12…", "host", or "job 3" (slurm)
    gpu: object = None       # kit.gpus.Gpu, or None when the run does not choose GPUs


class Runtime:
    """What kit run and kit doctor ask of a runtime (kit/runtimes/__init__.py lists it); a runtime overrides
    the defaults below where it differs. The class methods need no runtime made: --dry-run uses them."""

    name = ""               # its --runtime name (REGISTRY's key)
    summary = ""            # what --runtime's help says of it
    # Does a lane run all its jobs on one GPU (so it primes each server configuration once for
    # --cache warm)? False where the runtime places jobs itself: then every job primes its own.
    lanes_keep_gpu = True
    # Does the run choose GPUs of this host (--gpus)? False where the runtime places the jobs (Slurm): then
    # a lane is a job, and the doctor checks no GPU here.
    uses_host_gpus = True
    # Does --dry-run make the runtime (for its batch_script)? Others need no engine or controller for it.
    dry_run_needs_runtime = False
    # What split() makes one run per (Slurm: "partition"), for --dry-run's lines.
    part_name = ""

    @classmethod
    def from_options(cls, options, on_build_line=print):
        """The runtime for kit.options.RunOptions (on_build_line: the image build's output, where there is one)."""
        raise NotImplementedError

    def run_arm(self, job, out_dir, on_line):
        raise NotImplementedError

    def stop_run(self, run_id):
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError

    def job_record(self, job, out_dir):
        return {}

    def prepare(self):
        pass

    def plan_order(self, keys):
        pass

    def batch_script(self, job, out_dir):
        """What --dry-run shows of a job beyond its server commands (Slurm: its batch script); None: nothing."""
        return None

    def doctor_checks(self, options, results_dir):
        """The runtime's own checks (kit.checks.Check) for kit doctor and the pre-flight, after the GPU check."""
        return []

    @classmethod
    def split(cls, options):
        """[(part, options)]: the runs one `kit run` makes, each with its options; part ('' for a single run)
        suffixes the run id and names the run in the progress lines."""
        return [("", options)]

    @classmethod
    def host_gpus(cls, options):
        """The GPUs of this host the run uses (kit.gpus.Gpu), for its lanes and a sweep's fit."""
        return gpus.resolve(options.gpu_list) if cls.uses_host_gpus else []

    @classmethod
    def needs_host_gpu(cls, options):
        """Does the runtime need a GPU here even when the server is not vLLM's (Docker's GPU access)?"""
        return False

    @classmethod
    def lanes(cls, options, n_jobs):
        if not cls.uses_host_gpus:
            return [Lane(f"job {i + 1}") for i in range(n_jobs)]       # the runtime places the jobs
        chosen = cls.host_gpus(options)
        if not chosen:
            return [Lane("host")]
        return [Lane("all GPUs" if g.id == "all" else "gpu " + g.id, g) for g in chosen]

    @classmethod
    def hub_dir(cls, options, env=os.environ):
        """Where the servers will look for downloaded models: here, the host's own Hugging Face cache."""
        if env.get("HF_HUB_CACHE"):
            return Path(env["HF_HUB_CACHE"]).expanduser()
        return Path(env.get("HF_HOME") or "~/.cache/huggingface").expanduser() / "hub"


def job_name(job):
    """The job's container name (Docker, and Slurm's containers) and Slurm job name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"sleepkit-{job.run_id}-{job.unit}-r{job.repeat}")
