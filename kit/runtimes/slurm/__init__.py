"""Slurm runtime: one batch job per arm and repeat (sbatch), followed through squeue/scontrol.

client.py: the Slurm commands, their options and answers; script.py: the batch script; follow.py: following
a job to its end; runtime.py: SlurmRuntime; probe.py: its checks for kit doctor.

Each job's batch script is written to out_dir/job.sbatch and asks for one GPU (--gres=gpu:1, or
--gpus=1). On the node it runs `python3 -m kit.workload <argv> --out <out_dir>` either directly (the
node's python3 with vLLM installed, PYTHONPATH = this kit's folder, the compile cache of --cache) or in
the kit's image through podman or docker (host network and IPC, the job's GPUs as CDI devices or
`--gpus`, out_dir bind-mounted at /sleepkit/out). Slurm writes the job's output to out_dir/workload.log,
so out_dir must be on storage the nodes share: doctor_checks() proves it with a tiny job
(probe.py).

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
from kit.runtimes.slurm.client import SlurmError
from kit.runtimes.slurm.runtime import SlurmRuntime

__all__ = ["SlurmError", "SlurmRuntime"]
