"""`kit doctor`: can a run start here? Each check is one line, with what to do when it fails.

run_checks() only looks: it starts no container, downloads nothing and writes nothing but a probe file
in the results dir (removed at once). Host side (docker-py, optional NVML bindings).
"""
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kit import scenarios

IMAGE_DISK_GB = 30      # the vLLM image unpacked, plus the kit's layer and build room
GPU_FREE_FRACTION = 0.6  # two servers at --gpu-memory-utilization 0.3 each
GB, GIB = 1e9, 1024 ** 3


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self):
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}" + ("" if self.ok else f" -> {self.fix}")


def run_checks(results_dir, runtime="docker", models=(scenarios.MODEL_A, scenarios.MODEL_B),
               hf_cache="~/.cache/huggingface", client=None, env=os.environ):
    checks = []
    if runtime == "docker":
        engine, client = check_engine(client)
        checks += [engine, check_nvidia_runtime(client), check_image_disk(client)]
    checks += [check_gpus(), check_models(models, hub_dir(runtime, hf_cache, env), env),
               check_results_dir(results_dir)]
    return checks


def check_engine(client=None):
    from kit.image import ImageError, connect
    try:
        client = client or connect(timeout=10)
        v = client.version()
    except ImageError as e:
        return Check("docker engine", False, str(e).split(";")[0],
                     "start Docker (`sudo systemctl start docker`) or set DOCKER_HOST; "
                     "or run with --runtime local"), None
    return Check("docker engine", True, f"Docker {v.get('Version')} (API {v.get('ApiVersion')})"), client


def check_nvidia_runtime(client):
    fix = ("install the NVIDIA Container Toolkit and run `sudo nvidia-ctk runtime configure --runtime=docker "
           "&& sudo systemctl restart docker`")
    if client is None:
        return Check("nvidia container runtime", False, "not checked: no Docker engine", fix)
    info = client.info()
    runtimes = sorted(info.get("Runtimes") or {})
    cdi = [d for d in info.get("CDISpecDirs") or [] if any(Path(d).glob("nvidia*"))]
    if "nvidia" in runtimes:
        return Check("nvidia container runtime", True, f"runtimes: {', '.join(runtimes)}")
    if cdi:
        return Check("nvidia container runtime", True, f"CDI specs for nvidia in {', '.join(cdi)}")
    if shutil.which("nvidia-container-runtime-hook"):
        return Check("nvidia container runtime", True, "nvidia-container-runtime-hook on PATH (--gpus works)")
    return Check("nvidia container runtime", False,
                 f"no nvidia runtime (runtimes: {', '.join(runtimes) or 'none'}), no CDI spec, no hook", fix)


def check_image_disk(client):
    if client is None:
        return Check("disk for the image", False, "not checked: no Docker engine", "start Docker first")
    root = client.info().get("DockerRootDir") or "/var/lib/docker"
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return Check("disk for the image", False, f"cannot read free space of Docker's root dir {root} here",
                     f"make sure {IMAGE_DISK_GB} GB are free where the engine keeps images")
    detail = f"{free / GB:.0f} GB free in {root} (need {IMAGE_DISK_GB} GB)"
    return Check("disk for the image", free >= IMAGE_DISK_GB * GB, detail,
                 "free space there (`docker system prune`) or move Docker's data-root")


def check_gpus():
    try:
        import pynvml
    except ImportError:
        return Check("gpus", False, "NVML bindings (pynvml) not installed", "pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return Check("gpus", False, f"NVML does not start ({e})",
                     "install the NVIDIA driver; `nvidia-smi` must list the GPU")
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            gpus.append((i, name.decode() if isinstance(name, bytes) else name, mem.free, mem.total))
        driver = pynvml.nvmlSystemGetDriverVersion()
    finally:
        pynvml.nvmlShutdown()
    if not gpus:
        return Check("gpus", False, "NVML sees no GPU", "check `nvidia-smi`")
    detail = f"driver {driver.decode() if isinstance(driver, bytes) else driver}; " + "; ".join(
        f"{i}: {name}, {free / GIB:.1f} of {total / GIB:.1f} GiB free" for i, name, free, total in gpus)
    _, _, free, total = gpus[0]
    return Check("gpus", free >= GPU_FREE_FRACTION * total, detail,
                 f"GPU 0 needs {GPU_FREE_FRACTION:.0%} of its memory free for the two servers: "
                 "stop what uses it (see `nvidia-smi`)")


def hub_dir(runtime, hf_cache, env=os.environ):
    """Where the servers will look for downloaded models: the mounted cache, or the host's own."""
    if runtime == "docker":
        return Path(hf_cache).expanduser() / "hub"
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    return Path(env.get("HF_HOME") or "~/.cache/huggingface").expanduser() / "hub"


def model_source(model, hub):
    """'local dir', 'HF cache' or None (must be downloaded at run time)."""
    if Path(model).expanduser().is_dir():
        return "local dir"
    if any((hub / f"models--{model.replace('/', '--')}" / "snapshots").glob("*/config.json")):
        return "HF cache"
    return None


def check_models(models, hub, env=os.environ):
    sources = {m: model_source(m, hub) for m in models}
    detail = "; ".join(f"{m}: {s or 'not present'}" for m, s in sources.items())
    missing = [m for m, s in sources.items() if s is None]
    if not missing:
        return Check("models", True, detail)
    if env.get("HF_TOKEN"):
        return Check("models", True, detail + "; HF_TOKEN is set, the servers will download them")
    return Check("models", False, detail + f" (looked in {hub}); HF_TOKEN not set",
                 f"download them first (`huggingface-cli download {missing[0]}`), export HF_TOKEN, "
                 "or pass --model-a/--model-b local dirs")


def check_results_dir(results_dir):
    path = Path(results_dir).expanduser()
    probe_dir = path
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    fix = f"pass --results-dir DIR with a folder you can write, or fix the permissions of {probe_dir}"
    if not probe_dir.is_dir():
        return Check("results dir", False, f"{probe_dir} is not a folder", fix)
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".kit-doctor-"):
            pass
    except OSError as e:
        return Check("results dir", False, f"cannot write in {probe_dir} ({e.strerror})", fix)
    return Check("results dir", True, f"{path} is writable" if probe_dir == path else f"{path} can be created")
