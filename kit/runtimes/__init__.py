"""Runtimes run one job (an arm repeat) of the workload somewhere and collect what it wrote.

Every runtime has the same contract:

    runtime.run_arm(job, out_dir, on_line) -> exit status of the workload
        job      an ArmJob (below)
        out_dir  the host folder where the arm's files must end up
                 (events.jsonl, env.json, server-*.log, workload.log)
        on_line  called with each line the workload prints (progress), as it comes
    runtime.stop_run(run_id)   stop and remove everything this run started (Ctrl-C path)
    runtime.describe()         dict for the manifest (image, python env, engine, ...)
    runtime.job_record(job, out_dir)   what the manifest keeps of one job (its GPU access, its Slurm
                               job id and node)
    runtime.prepare()          after the pre-flight, before any job (Docker: build or find the image)
    runtime.plan_order(keys)   the run's (run id, unit, repeat) in the order they will be started
The last three default to nothing (class Runtime).

run_arm is called from one thread per lane (kit/schedule.py) at once, so a runtime keeps its state per
job. A job's GPU, when the run chose one, is job.gpu: the runtime makes it the only GPU the workload sees.
The workload itself is always `python3 -m kit.workload <job.argv> --out <dir>`.
"""
import re
from dataclasses import dataclass, field


@dataclass
class ArmJob:
    run_id: str
    unit: str                   # the folder name: arm, or arm@script for a seed variant
    repeat: int
    argv: list                  # ArmOptions.to_argv(): after `python3 -m kit.workload`, without --out
    gpu: object = None          # kit.gpus.Gpu of this job's lane, or None (no GPU chosen: the runtime's default)
    env: dict = field(default_factory=dict)          # extra environment for the workload
    model_paths: list = field(default_factory=list)  # local model dirs that must be visible (mounted ro)


class Runtime:
    """The parts of the contract most runtimes do not need."""

    # Does a lane run all its jobs on one GPU (so it primes each server configuration once for
    # --cache warm)? False where the runtime places jobs itself: then every job primes its own.
    lanes_keep_gpu = True

    def job_record(self, job, out_dir):
        return {}

    def prepare(self):
        pass

    def plan_order(self, keys):
        pass


def job_name(job):
    """The job's container name (Docker, and Slurm's containers) and Slurm job name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"sleepkit-{job.run_id}-{job.unit}-r{job.repeat}")


def get_runtime(options, on_build_line=print):
    """The runtime for a run's options (kit.options.RunOptions)."""
    if options.runtime == "local":
        from kit.runtimes.local import LocalRuntime
        return LocalRuntime(cache=options.cache)
    if options.runtime == "slurm":
        from kit.runtimes.slurm import SlurmRuntime
        return SlurmRuntime.from_options(options)
    from kit.runtimes.docker import DockerRuntime
    return DockerRuntime(image=options.image or None, vllm_image=options.vllm_image or None,
                         gpu_access=options.gpu_access, hf_cache=options.hf_cache, cache=options.cache,
                         on_build_line=on_build_line)
