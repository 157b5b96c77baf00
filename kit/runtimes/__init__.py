"""Runtimes run one job (an arm repeat) of the workload somewhere and collect what it wrote.

Every runtime is a class Runtime (kit/runtimes/base.py) named in REGISTRY below; kit run and kit doctor
use it only through this contract, never by its name (docs/runtimes.md: how to add one):

    Runtime.from_options(options, on_build_line)   the runtime for a run's kit.options.RunOptions
    runtime.run_arm(job, out_dir, on_line) -> exit status of the workload
        job      an ArmJob (kit/runtimes/base.py)
        out_dir  the host folder where the arm's files must end up
                 (events.jsonl, env.json, server-*.log, workload.log)
        on_line  called with each line the workload prints (progress), as it comes
    runtime.stop_run(run_id)   stop and remove everything this run started (Ctrl-C path)
    runtime.describe()         dict for the manifest (image, python env, engine, ...)
and, with defaults in class Runtime:
    runtime.job_record(job, out_dir)   what the manifest keeps of one job (its GPU access, its Slurm
                               job id and node)
    runtime.prepare()          after the pre-flight, before any job (Docker: build or find the image)
    runtime.plan_order(keys)   the run's (run id, unit, repeat) in the order they will be started
    runtime.batch_script(job, out_dir)   what --dry-run shows of a job (Slurm: its batch script)
    runtime.doctor_checks(options, results_dir)   its checks for kit doctor and the pre-flight
    Runtime.split(options), .lanes(options, n_jobs), .host_gpus(options), .needs_host_gpu(options),
    .hub_dir(options, env)     what a run is made of, from its options alone (no runtime made)
    Runtime.summary, .lanes_keep_gpu, .uses_host_gpus, .dry_run_needs_runtime, .part_name

run_arm is called from one thread per lane (kit/schedule.py) at once, so a runtime keeps its state per
job. A job's GPU, when the run chose one, is job.gpu: the runtime makes it the only GPU the workload sees.
The workload itself is always `python3 -m kit.workload <job.argv> --out <dir>`.
"""
from kit.runtimes.base import ArmJob, Lane, Runtime, job_name
from kit.runtimes.docker import DockerRuntime
from kit.runtimes.local import LocalRuntime
from kit.runtimes.slurm import SlurmRuntime

__all__ = ["ArmJob", "Lane", "REGISTRY", "Runtime", "get_runtime", "job_name", "runtime_class"]

# --runtime NAME -> its class (the choices of --runtime, in this order)
REGISTRY = {"docker": DockerRuntime, "local": LocalRuntime, "slurm": SlurmRuntime}


def runtime_class(options):
    """The class of a run's runtime (kit.options.RunOptions.runtime)."""
    return REGISTRY[options.runtime]


def get_runtime(options, on_build_line=print):
    """The runtime for a run's options (kit.options.RunOptions)."""
    return runtime_class(options).from_options(options, on_build_line)
