"""Runtimes run one arm (one repeat) of the workload somewhere and collect what it wrote.

Every runtime has the same contract:

    runtime.run_arm(job, out_dir, on_line) -> exit status of the workload
        job      an ArmJob (below)
        out_dir  the host folder where the arm's files must end up
                 (events.jsonl, env.json, server-*.log, workload.log)
        on_line  called with each line the workload prints (progress), as it comes

    runtime.stop_run(run_id)   stop and remove everything this run started (Ctrl-C path)
    runtime.describe()         dict for the manifest (image id, python env, ...)

The workload itself is always `python3 -m kit.workload <job.workload_args> --out <dir>`.
"""
from dataclasses import dataclass, field


@dataclass
class ArmJob:
    run_id: str
    arm: str
    repeat: int
    workload_args: list            # argv after `python3 -m kit.workload`, without --out
    env: dict = field(default_factory=dict)         # extra environment for the workload
    model_paths: list = field(default_factory=list)  # local model dirs that must be visible (mounted ro)


def get_runtime(name, **options):
    if name == "local":
        from kit.runtimes.local import LocalRuntime
        return LocalRuntime(**options)
    if name == "docker":
        from kit.runtimes.docker import DockerRuntime
        return DockerRuntime(**options)
    raise ValueError(f"unknown runtime {name!r}")
