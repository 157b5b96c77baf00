"""GPU memory used (NVML, nvidia-smi as fallback) and host RSS of a process tree (psutil).

Container side: standard library and psutil only; NVML bindings when the image has them.
Per-process GPU attribution is not used: inside a container NVML reports the host's PIDs.
"""
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
        except Exception:
            _nvml_ready = False
    return _nvml_ready


def _smi(query):
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return [[field.strip() for field in line.split(",")] for line in out.stdout.strip().splitlines()]


def gpus():
    """[{index, name, memory_mib}] of the visible GPUs, plus the driver version; ([], None) without GPUs."""
    if pynvml and _nvml():
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            found.append({"index": i, "name": name.decode() if isinstance(name, bytes) else name,
                          "memory_mib": pynvml.nvmlDeviceGetMemoryInfo(h).total // 2**20})
        driver = pynvml.nvmlSystemGetDriverVersion()
        return found, driver.decode() if isinstance(driver, bytes) else driver
    rows = _smi("index,name,memory.total,driver_version")
    if not rows:
        return [], None
    return [{"index": int(r[0]), "name": r[1], "memory_mib": int(r[2])} for r in rows], rows[0][3]


def gpu_used_mib():
    """GPU memory used, summed over the visible devices, in MiB; None when there is no GPU."""
    if pynvml and _nvml():
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            total += pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used
        return total // 2**20
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


def tree_pids(pid):
    try:
        root = psutil.Process(pid)
        return [root.pid] + [c.pid for c in root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []

