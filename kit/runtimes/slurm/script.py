"""The batch script of one arm job: the workload directly on the node, or in the kit's image with podman or
docker. What the job prints first (MARK) names its node and GPUs."""
import shlex
from pathlib import Path

from kit.errors import BadInput
from kit.layout import WORKLOAD_LOG as LOG
from kit.runtimes.base import job_name
from kit.runtimes.common import COMPILE_CACHE_VOLUME, HF_CACHE_TARGET, KIT_ROOT, OUT, container_spec
from kit.runtimes.slurm.client import job_comment
from kit.workload.compilecache import cache_env

SHARED_CACHE = "$HOME/.cache/sleepkit/compile"  # --cache warm/shared, direct: on the node, like local.py's
CACHE_SLOT = "gpu${SLURM_JOB_GPUS:--any}"        # one cache per GPU, as common.cache_slot (why: there)
MARK = "sleepkit-slurm:"                         # the job's first output line: node and GPUs

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


def batch_script(job, out_dir, runtime):
    """The batch script of one arm job of a SlurmRuntime."""
    out_dir = Path(out_dir).resolve()
    output = str(out_dir / LOG).replace("%", "%%")    # sbatch expands %j, %x, ... in --output
    head = [f"--job-name={job_name(job)}", f"--comment={job_comment(job)}", f"--output={output}",
            "--open-mode=append", f"--chdir={out_dir}", *runtime.directives()]
    odd = next((h for h in head if not h.isprintable()), None)
    if odd is not None:      # it would end its #SBATCH line and start another
        raise BadInput(f"sbatch option {odd!r} holds a newline or control character",
                       "use a results folder and Slurm options without them")
    mode = f"in {runtime.image} with {runtime.container}" if runtime.container else f"directly with the node's {runtime.python}"
    lines = ["#!/bin/bash"] + [f"#SBATCH {shlex.quote(h)}" for h in head] + [
        f"# sleepkit: arm {job.unit}, repeat {job.repeat} of run {job.run_id}; the workload runs {mode}.",
        "# Results go straight into --chdir: it must be on storage the nodes share (kit doctor checks).",
        "set -u",
        f'echo "{MARK} job=$SLURM_JOB_ID node=${{SLURMD_NODENAME:-$(hostname -s)}} '
        f'CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-}} SLURM_JOB_GPUS=${{SLURM_JOB_GPUS-}}"']
    if runtime.container:
        lines += container_body(job, out_dir, runtime.container, runtime.image, runtime.cache, runtime.hf_cache,
                                runtime.gpu_access, runtime.cdi_kind, runtime.stop_timeout)
    else:
        lines += direct_body(job, out_dir, runtime.python, runtime.cache)
    return "\n".join(lines) + "\n" + WAIT
