"""The host's GPUs through NVML: what `--gpus` names, and whether a GPU is free enough for an arm.

Where NVML is absent (CI, a laptop with the test double as the server), the ids given are taken as
they are: the scheduler and its tests work the same without a GPU.
"""
from dataclasses import dataclass

from kit.errors import BadInput

FREE_FRACTION = 0.6    # the study's sleep arms: two servers at --gpu-memory-utilization 0.3 each


@dataclass(frozen=True)
class Gpu:
    id: str                  # what the user wrote, or the NVML index
    index: int | None = None
    uuid: str | None = None
    name: str | None = None
    minor: int | None = None  # /dev/nvidia<minor>

    @property
    def visible(self):
        """CUDA_VISIBLE_DEVICES for this GPU: its NVML index (with CUDA_DEVICE_ORDER=PCI_BUS_ID, CUDA's numbering
        is NVML's), else the id as given. Not the UUID: vLLM reads CUDA_VISIBLE_DEVICES as integers."""
        return str(self.index) if self.index is not None else self.id

    def record(self):
        return {"id": self.id, "index": self.index, "uuid": self.uuid, "name": self.name}


def _nvml():
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no bindings, no driver, no GPU: all mean "no NVML here"
        return None


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def nvml_gpus():
    """Every GPU NVML sees, or None without NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        found = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            found.append(Gpu(str(i), i, _text(nvml.nvmlDeviceGetUUID(h)), _text(nvml.nvmlDeviceGetName(h)),
                             nvml.nvmlDeviceGetMinorNumber(h)))
        return found
    finally:
        nvml.nvmlShutdown()


def resolve(ids, known=None):
    """'all' or a tuple of ids (kit.options.parse_gpus) -> [Gpu]. 'none' -> []. known: nvml_gpus(), when the
    caller has listed them already."""
    if ids == "none":
        return []
    known = known if known is not None else nvml_gpus()
    if known is None:
        if ids == "all":
            return [Gpu("all")]      # no NVML: one lane, whatever the runtime makes of "all"
        return [Gpu(i) for i in ids]
    if ids == "all":
        return known
    by_id = {g.id: g for g in known} | {g.uuid: g for g in known}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise BadInput(f"--gpus: no GPU {missing[0]} here", f"NVML sees {', '.join(g.id for g in known) or 'none'}")
    return [by_id[i] for i in ids]


def _memory(gpu):
    """NVML's memory info of a GPU, or None (no NVML, or a GPU named without an NVML index); NVML's errors
    propagate."""
    if gpu.index is None:
        return None
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        return nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(gpu.index))
    finally:
        nvml.nvmlShutdown()


def busy_reason(gpu, fraction=FREE_FRACTION):
    """Why this GPU cannot take an arm now (too little free memory), or None (also when NVML is absent)."""
    try:
        mem = _memory(gpu)
    except Exception as e:  # noqa: BLE001 - a GPU NVML cannot read is not usable
        return f"NVML cannot read GPU {gpu.id} ({e})"
    if mem is not None and mem.free < fraction * mem.total:
        return (f"GPU {gpu.id} has {mem.free / 2**30:.1f} of {mem.total / 2**30:.1f} GiB free; this run's "
                f"servers need {fraction:.0%} free (their --gpu-memory-utilization, all at once)")
    return None


def total_mib(gpu):
    """A GPU's memory in MiB by NVML, or None (no NVML, or a GPU named without an NVML index)."""
    try:
        mem = _memory(gpu)
    except Exception:  # noqa: BLE001 - a GPU NVML cannot read has no known size
        return None
    return mem.total // 2**20 if mem is not None else None
