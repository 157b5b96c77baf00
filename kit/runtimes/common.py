"""What the runtimes share: the kit's folder, the compile cache slots, and the workload's container (the Docker
runtime's, and the Slurm runtime's with podman or docker; compose.yaml describes the same)."""
import re
from pathlib import Path

from kit.runtimes import gpu_access
from kit.runtimes.base import job_name

KIT_ROOT = Path(__file__).resolve().parents[2]   # the folder that holds the `kit` package
OUT = "/sleepkit/out"
HF_CACHE_TARGET = "/root/.cache/huggingface"
COMPILE_CACHE_VOLUME = "sleepkit-compile-cache"
COMPILE_CACHE_TARGET = "/root/.cache/vllm"
PASS_ENV = ["HF_TOKEN"]      # taken from the host environment when set; never written anywhere
LABEL_RUN, LABEL_ARM, LABEL_REPEAT = "sleepkit.run", "sleepkit.arm", "sleepkit.repeat"


def cache_slot(gpu):
    """--cache warm and shared keep one compile cache per GPU: servers starting at once on two GPUs would write the
    same artifacts at once, and vLLM before 0.11.1 saves them as folders that such writes clobber (vllm#24601)."""
    if gpu is None or gpu.id == "all":
        return "gpu-any"
    return "gpu" + re.sub(r"[^A-Za-z0-9_.-]", "_", gpu.id)


def container_spec(job, image, gpu=None, hf_cache="~/.cache/huggingface", cache="warm"):
    """What the arm's container is, without secrets: safe to log, compare (compose test) and record.
    gpu: the GPU settings of kit.runtimes.gpu_access.settings() (None: no GPU)."""
    gpu = gpu or gpu_access.settings("toolkit", [])
    env = {"VLLM_SERVER_DEV_MODE": "1", **gpu["environment"], **job.env}
    mounts = [{"type": "bind", "source": str(Path(hf_cache).expanduser().resolve()),
               "target": HF_CACHE_TARGET, "read_only": False}]
    mounts += [{"type": "bind", "source": str(Path(p).resolve()), "target": str(Path(p).resolve()),
                "read_only": True} for p in job.model_paths]
    mounts += gpu["mounts"]
    if cache != "cold":   # cold: nothing mounted; the workload gives every server start empty caches
        mounts.append({"type": "volume", "source": f"{COMPILE_CACHE_VOLUME}-{cache_slot(job.gpu)}",
                       "target": COMPILE_CACHE_TARGET, "read_only": False})
        env.update(TORCHINDUCTOR_CACHE_DIR=f"{COMPILE_CACHE_TARGET}/torchinductor",
                   TRITON_CACHE_DIR=f"{COMPILE_CACHE_TARGET}/triton")
    return {"image": image, "command": list(job.argv) + ["--out", OUT], "environment": env,
            "pass_env": list(PASS_ENV), "mounts": mounts, "ipc_mode": "host", "network_mode": "host",
            "init": True, "gpu": gpu,
            "labels": {LABEL_RUN: job.run_id, LABEL_ARM: job.unit, LABEL_REPEAT: str(job.repeat)},
            "name": job_name(job)}
