"""How a GPU gets into a container: one pure function from (mode, GPUs, host facts) to the container's
GPU settings, and the choice of mode for `--gpu-access auto`.

  toolkit   a device request, what `docker run --gpus` sends; the NVIDIA Container Toolkit's hook
            mounts the driver. Needs the toolkit on the host.
  cdi       a device request with driver "cdi" and CDI names (nvidia.com/gpu=0), what `docker run
            --device nvidia.com/gpu=0` sends on Docker >= 25 with a CDI spec (`nvidia-ctk cdi generate`).
  devices   no toolkit: the GPUs' /dev/nvidia<minor> nodes plus /dev/nvidiactl, nvidia-uvm and
            nvidia-uvm-tools are passed as devices, and the host's driver libraries (below) and
            nvidia-smi are bind-mounted read-only at /usr/local/nvidia, the folder NVIDIA's CUDA images
            (vLLM's among them) already put on LD_LIBRARY_PATH.

Driver libraries for `devices` (user-space halves of the kernel driver; they must match it exactly, so
they come from the host, never from an image): libcuda (the CUDA driver API: torch, vLLM), libnvidia-ml
(NVML: nvidia-smi, pynvml, the kit's memory readings), libnvidia-ptxjitcompiler and libnvidia-nvvm (the
driver's JIT for PTX and NVVM IR: Triton's and torch.compile's kernels), libnvidia-gpucomp (what those two
load in recent drivers), libcudadebugger (cuda-gdb, harmless when unused), libnvidia-cfg (nvidia-smi).
"""
import glob
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field

from kit.errors import NotReady

MODES = ("toolkit", "cdi", "devices")
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
DRIVER_LIBS = ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so",
               "libnvidia-gpucomp.so", "libcudadebugger.so", "libnvidia-cfg.so")
DRIVER_DIRS = ("/usr/local/nvidia",)
TARGET = "/usr/local/nvidia"
LIB_PATH = f"{TARGET}/lib64:{TARGET}/lib"


@dataclass(frozen=True)
class Host:
    """What the host has for GPUs in containers (gather() reads it; tests build it by hand)."""
    nodes: tuple = ()                 # /dev/nvidia<N> character devices
    control: tuple = ()               # CONTROL_NODES that exist
    driver_dir: str | None = None     # a driver folder (lib64/, bin/nvidia-smi), e.g. /usr/local/nvidia
    libraries: dict = field(default_factory=dict)   # soname -> host path (from the ldconfig cache)
    smi: str | None = None
    hook: bool = False                # nvidia-container-runtime-hook on PATH (what --gpus needs)


def _char_device(path):
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def ldconfig_libraries():
    """{soname: path} of the driver libraries in the ldconfig cache (x86-64 entries)."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and "x86-64" in m.group(2) and m.group(1).startswith(DRIVER_LIBS):
            found.setdefault(m.group(1), m.group(3))
    return found


def gather():
    nodes = tuple(sorted((p for p in glob.glob("/dev/nvidia[0-9]*") if re.fullmatch(r"/dev/nvidia\d+", p)
                          and _char_device(p)), key=lambda p: int(p[len("/dev/nvidia"):])))
    control = tuple(p for p in CONTROL_NODES if _char_device(p))
    driver_dir = next((d for d in DRIVER_DIRS if glob.glob(f"{d}/lib*/libcuda.so*")), None)
    return Host(nodes=nodes, control=control, driver_dir=driver_dir,
                libraries={} if driver_dir else ldconfig_libraries(),
                smi=shutil.which("nvidia-smi"), hook=bool(shutil.which("nvidia-container-runtime-hook")))


def available(mode, host, engine_info):
    """None if `mode` can work with this engine and host, else why not."""
    if mode == "toolkit":
        if "nvidia" in (engine_info.get("Runtimes") or {}) or host.hook:
            return None
        return "no NVIDIA Container Toolkit (no nvidia runtime in the engine, no nvidia-container-runtime-hook)"
    if mode == "cdi":
        dirs = engine_info.get("CDISpecDirs") or []
        if any(glob.glob(f"{d}/nvidia*") for d in dirs):
            return None
        version = engine_info.get("ServerVersion", "?")
        return (f"no CDI spec for nvidia.com/gpu in the engine's CDI folders ({', '.join(dirs) or 'none'}; "
                f"Docker {version}: CDI needs Docker >= 25 and `nvidia-ctk cdi generate`)")
    if mode == "devices":
        if not host.nodes or "/dev/nvidiactl" not in host.control:
            return "no /dev/nvidia<N> and /dev/nvidiactl device nodes on this host"
        if not host.driver_dir and not any(k.startswith("libcuda.so") for k in host.libraries):
            return "no NVIDIA driver libraries found (no /usr/local/nvidia, no libcuda.so.1 in the ldconfig cache)"
        return None
    raise ValueError(f"unknown GPU access mode {mode!r}")


def choose(requested, host, engine_info):
    """(mode, one line saying why) for --gpu-access; NotReady when no mode (or not the one asked) works."""
    modes = MODES if requested == "auto" else (requested,)
    reasons = {m: available(m, host, engine_info) for m in modes}
    for m in modes:
        if reasons[m] is None:
            how = "the first of toolkit, cdi, devices that works here" if requested == "auto" else "as asked"
            return m, f"GPU access: {m} ({how})"
    detail = "; ".join(f"{m}: {why}" for m, why in reasons.items())
    raise NotReady(f"no way to give a container the GPU here ({detail})",
                   "install the NVIDIA Container Toolkit, or run with --runtime local")


def _minor_node(gpu, host):
    if gpu.minor is not None:
        return f"/dev/nvidia{gpu.minor}"
    if gpu.id.isdigit() and f"/dev/nvidia{gpu.id}" in host.nodes:
        return f"/dev/nvidia{gpu.id}"
    raise NotReady(f"cannot tell which /dev/nvidia<N> is GPU {gpu.id}", "install the NVML bindings (nvidia-ml-py)")


def _driver_mounts(host):
    if host.driver_dir:
        return [{"type": "bind", "source": host.driver_dir, "target": TARGET, "read_only": True}]
    mounts = []
    for soname, path in sorted(host.libraries.items()):
        real = os.path.realpath(path)
        names = {soname, soname.split(".so")[0] + ".so"}       # libcuda.so.1 and libcuda.so (Triton links -lcuda)
        mounts += [{"type": "bind", "source": real, "target": f"{TARGET}/lib64/{n}", "read_only": True}
                   for n in sorted(names)]
    if host.smi:
        mounts.append({"type": "bind", "source": os.path.realpath(host.smi), "target": f"{TARGET}/bin/nvidia-smi",
                       "read_only": True})
    return mounts


def settings(mode, gpus, host=None):
    """The container's GPU settings for `gpus` (a list of kit.gpus.Gpu; [Gpu('all')] = every GPU; [] = none):
    {"mode", "device_requests": [{driver, count, device_ids, capabilities}], "devices": ["src:dst:rwm"],
    "mounts": [...], "environment": {...}}. JSON-able (it goes into the manifest); no secrets.
    In the container the GPUs are numbered from 0 (only theirs are there), so CUDA_VISIBLE_DEVICES is not
    set; SLEEPKIT_GPU_UUIDS tells the workload whose memory to read."""
    out = {"mode": mode if gpus else "none", "device_requests": [], "devices": [], "mounts": [], "environment": {}}
    if not gpus:
        return out
    every = any(g.id == "all" for g in gpus)
    if mode == "toolkit":
        out["device_requests"] = [{"driver": "", "count": -1 if every else 0,
                                   "device_ids": [] if every else [g.uuid or g.id for g in gpus],
                                   "capabilities": [["gpu"]]}]
    elif mode == "cdi":
        names = ["nvidia.com/gpu=all"] if every else [f"nvidia.com/gpu={g.uuid or g.id}" for g in gpus]
        out["device_requests"] = [{"driver": "cdi", "count": 0, "device_ids": names, "capabilities": []}]
    elif mode == "devices":
        host = host or gather()
        nodes = list(host.nodes) if every else [_minor_node(g, host) for g in gpus]
        out["devices"] = [f"{n}:{n}:rwm" for n in nodes + list(host.control)]
        out["mounts"] = _driver_mounts(host)
        out["environment"] = {"LD_LIBRARY_PATH": LIB_PATH}
    else:
        raise ValueError(f"unknown GPU access mode {mode!r}")
    if not every and all(g.uuid for g in gpus):
        out["environment"]["SLEEPKIT_GPU_UUIDS"] = ",".join(g.uuid for g in gpus)
    return out
