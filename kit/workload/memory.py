"""GPU memory used (NVML, nvidia-smi as fallback) and host RSS of a process tree (psutil).

Only the GPUs this workload may use count: those SLEEPKIT_GPU_UUIDS names (set by the kit when it gives a
job a GPU), else those CUDA_VISIBLE_DEVICES names (indices, in PCI bus order with CUDA_DEVICE_ORDER=PCI_BUS_ID,
or GPU-<uuid>), else every GPU NVML can open. Arms running side by side on other GPUs of the host
therefore do not show in each other's numbers. (vLLM needs CUDA_VISIBLE_DEVICES to hold indices, not UUIDs.)
Per-process GPU attribution is not used: inside a container NVML reports the host's PIDs.
Container side: standard library and psutil; NVML bindings when the image has them.
"""
import functools
import os
import shutil
import subprocess

import psutil

try:
    import pynvml
except ImportError:  # NVML bindings are optional; nvidia-smi or nothing
    pynvml = None

_nvml_ready = None


def _nvml():
    global _nvml_ready
    if _nvml_ready is None:
        try:
            pynvml.nvmlInit()
            _nvml_ready = True
        except Exception:  # noqa: BLE001 - any NVML failure means: no NVML here
            _nvml_ready = False
    return _nvml_ready


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def visible_ids(environ=os.environ):
    """The GPUs this workload may use (SLEEPKIT_GPU_UUIDS, else CUDA_VISIBLE_DEVICES), or None: all."""
    value = environ.get("SLEEPKIT_GPU_UUIDS") or environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _selected(index, uuid, wanted):
    return wanted is None or any(w == str(index) or (w.startswith("GPU-") and uuid.startswith(w)) for w in wanted)


@functools.cache
def _nvml_devices():
    """(index, uuid, handle) of the wanted GPUs NVML can open (in a container given one GPU's device node,
    NVML still lists the others but cannot open them). Read once per process: the visible set does not change."""
    wanted = visible_ids()
    found = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = _text(pynvml.nvmlDeviceGetUUID(h))
        except pynvml.NVMLError:
            continue
        if _selected(i, uuid, wanted):
            found.append((i, uuid, h))
    return found


def _smi(query):
    if not shutil.which("nvidia-smi"):
        return None
    cmd = ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"]
    wanted = visible_ids()
    if wanted:
        cmd.append("--id=" + ",".join(wanted))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return [[f.strip() for f in line.split(",")] for line in out.stdout.strip().splitlines()]


def gpus():
    """([{index, uuid, name, memory_mib}] of the visible GPUs, driver version); ([], None) without GPUs."""
    if pynvml and _nvml():
        found = [{"index": i, "uuid": uuid, "name": _text(pynvml.nvmlDeviceGetName(h)),
                  "memory_mib": pynvml.nvmlDeviceGetMemoryInfo(h).total // 2**20} for i, uuid, h in _nvml_devices()]
        return found, _text(pynvml.nvmlSystemGetDriverVersion())
    rows = _smi("index,uuid,name,memory.total,driver_version")
    if not rows:
        return [], None
    return [{"index": int(r[0]), "uuid": r[1], "name": r[2], "memory_mib": int(r[3])} for r in rows], rows[0][4]


def gpu_used_mib():
    """GPU memory used, summed over the visible GPUs, in MiB; None when there is no GPU to read."""
    if pynvml and _nvml():
        devices = _nvml_devices()
        if not devices:
            return None
        return sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for _, _, h in devices) // 2**20
    rows = _smi("memory.used")
    return sum(int(r[0]) for r in rows) if rows else None


def tree_rss_mib(pid):
    """Resident memory of a process and all its descendants (API server + engine core), in MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total // 2**20
