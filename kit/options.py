"""The options of a run: one frozen dataclass, built once from the command line, checked once,
written to the manifest and read back whole by `kit run --resume` (kit/manifest.py).

Each field's metadata carries its help text (the CLI's options are made from it, kit/cli.py), the environment
variable the CLI reads it from when it is not typed (envvar), and whether `kit run --resume` may change it
(resume: how a job is scheduled, not what it measures); its manifest key is the field name
(docs/results-layout.md lists them; a test keeps the two in step).
Defaults the workload shares (server command, timeouts, models, protocol) come from kit.workload.options.
"""
import math
import re
import shlex
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path

from kit import layout
from kit.errors import BadInput, BadRecord
from kit.runtimes import REGISTRY
from kit.workload import scenarios
from kit.workload.options import MAX_TIMEOUT_S, PROTOCOLS, ArmOptions
from kit.workload.options import defaults as arm_defaults

RUN_RUNTIMES = tuple(REGISTRY)                  # what `kit run` can start (its --runtime choices)
ADOPTED = ("compose",)                          # what a manifest can hold besides: compose = adopted (`kit adopt`)
RUNTIMES = RUN_RUNTIMES + ADOPTED
CACHES = ("warm", "cold", "shared")
GPU_ACCESS = ("auto", "toolkit", "cdi", "devices")
SLURM_CONTAINERS = ("none", "podman", "docker")
MAX_REPEAT = 100          # 100 repeats of all five arms are about a day on one GPU
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_ARM = arm_defaults()


def _o(default, help, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class RunOptions:
    tables: tuple = _o((), "the tables (1-5) the run is for")
    arms: tuple = _o((), "only these arms (--arm), instead of every arm of the tables")
    repeat: int = _o(1, "repeats of every arm")
    runtime: str = _o("docker", "; ".join(f"{name}: {cls.summary}" for name, cls in REGISTRY.items()),
                      choices=RUN_RUNTIMES)
    model_a: str = _o(_ARM["model_a"], "model A: hub name or local folder")
    model_b: str = _o(_ARM["model_b"], "model B: hub name or local folder")
    protocol: str = _o(_ARM["protocol"], "corrected, or seed: replay the original scripts' requests", choices=PROTOCOLS)
    fixed_output: bool = _o(_ARM["fixed_output"], "send ignore_eos so every prompt yields exactly 100 tokens")
    server_cmd: str = _o(_ARM["server_cmd"], "server command; the kit appends --model, --host, --port and "
                                             "the study's arguments")
    ready_timeout: float = _o(_ARM["ready_timeout"], "seconds a server may take to start")
    call_timeout: float = _o(_ARM["call_timeout"], "seconds one HTTP call may take")
    cache: str = _o("warm", "compile caches: warm = every server configuration is started once per GPU "
                            "before it is measured, so every measured load reads its compiled graphs from the "
                            "cache; cold = an empty cache for every server start, so every load compiles; "
                            "shared = one persistent cache per GPU, loads as they happen to be (quick)",
                    choices=CACHES)
    gpus: str = _o("all", "GPUs the run may use, one arm per GPU at a time: all, none, or ids like 0,1")
    gpu_access: str = _o("auto", "docker: how the GPU enters a container (auto picks what this engine "
                                 "supports)", choices=GPU_ACCESS)
    image: str = _o("", "docker: use this existing kit image, skip the build")
    vllm_image: str = _o("", "docker: build the kit image on this vLLM image (default: the study's v0.11.0)")
    hf_cache: str = _o("~/.cache/huggingface", "docker: the host's Hugging Face cache to mount")
    slurm_partition: str = _o("", "slurm: partition(s), comma-separated (default: the cluster's)",
                              envvar="KIT_SLURM_PARTITION")
    slurm_account: str = _o("", "slurm: account (a resume may change it)", envvar="KIT_SLURM_ACCOUNT", resume=True)
    slurm_time: str = _o("", "slurm: time limit per arm job, e.g. 1:00:00 (a resume may change it)",
                         envvar="KIT_SLURM_TIME", resume=True)
    slurm_args: str = _o("", "slurm: more sbatch options, e.g. '--constraint=h100' (a resume may change them)",
                         envvar="KIT_SLURM_ARGS", resume=True)
    slurm_python: str = _o("python3", "slurm: the Python on the nodes that runs the workload (direct mode; it needs "
                                      "psutil and vLLM)")
    sweep_models: tuple = _o((), "kit sweep: the models, one unit (a server of its own) per model and level")
    sweep_levels: tuple = _o((), "kit sweep: the sleep levels (1, 2) each model is measured at")
    gpu_memory_gib: float = _o(0.0, "kit sweep: the GPU memory (GiB) a model must fit; 0 = the GPU's own (NVML)")
    slurm_container: str = _o("none", "slurm: run the workload directly on the node (none), or in the kit's "
                                      "image (--image) with podman or docker", choices=SLURM_CONTAINERS)

    def check(self, here=True, needed=None):
        """BadInput naming the first problem; returns self so it chains. here=False: the options of a run
        made elsewhere (a bundle being verified), whose local model folders need not exist on this machine.
        needed: the sweep models whose folders must be here (a resumed sweep's with units still to run: those
        done may be gone, e.g. a later session on a small disk); None: all."""
        for name in ("runtime", "protocol", "cache", "gpu_access", "slurm_container"):
            allowed = RUNTIMES if name == "runtime" else field_meta(name).get("choices")
            if getattr(self, name) not in allowed:
                raise BadInput(f"--{flag(name)} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not 1 <= self.repeat <= MAX_REPEAT:
            raise BadInput(f"--repeat must be between 1 and {MAX_REPEAT} (got {self.repeat})",
                           "one repeat of all five arms takes about 15 minutes on one GPU")
        for name in ("ready_timeout", "call_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
                raise BadInput(f"--{flag(name)} must be a positive number of seconds, at most "
                               f"{MAX_TIMEOUT_S:.0f} (one day) (got {value})")
        try:
            if not shlex.split(self.server_cmd):
                raise ValueError("it is empty")
        except ValueError as e:
            raise BadInput(f"--server-cmd cannot be parsed as a command line: {e}", "check its quotes") from None
        for name in ("model_a", "model_b"):
            if here:
                check_model(getattr(self, name), flag(name))
        _ = self.gpu_list       # --gpus parsed once, here: BadInput when it is no GPU list
        if self.runtime == "slurm" and self.slurm_container != "none":
            if not self.image:
                raise BadInput(f"--slurm-container {self.slurm_container} needs --image",
                               "a kit image present on every node (`kit build` there, or load it)")
            if self.gpu_access == "devices":
                raise BadInput("--gpu-access devices is for --runtime docker", "use auto, cdi or toolkit with Slurm")
        unknown = [a for a in self.arms if a not in scenarios.ARMS]
        if unknown:
            raise BadInput(f"unknown arm {unknown[0]!r}", f"one of {', '.join(scenarios.ARMS)}")
        if self.sweep_models or self.sweep_levels:
            self._check_sweep(here, self.sweep_models if needed is None else needed)
        return self

    def _check_sweep(self, here, needed):
        from kit import sweep
        if self.tables or self.arms:
            raise BadInput("a sweep has no tables or arms: its units are its models x levels")
        if not self.sweep_models:
            raise BadInput("--models: give at least one model (hub names or folders, comma-separated)")
        if self.protocol != "corrected":
            raise BadInput("kit sweep measures with the corrected protocol only (the seed replay is for the tables)")
        if not (math.isfinite(self.gpu_memory_gib) and self.gpu_memory_gib >= 0):
            raise BadInput(f"--gpu-memory-gib must be a positive number of GiB (got {self.gpu_memory_gib})")
        sweep.check(self.sweep_models, self.sweep_levels)
        for model in needed if here else ():
            check_model(model, "models")

    @cached_property
    def gpu_list(self):
        """--gpus parsed (kit.options.parse_gpus): 'all', 'none' or a tuple of ids; BadInput when it is no list."""
        return parse_gpus(self.gpus)

    def table_numbers(self):
        """The tables a run shows: those asked for, or with --arm, every table using one of those arms."""
        if self.arms:
            return [n for n, t in scenarios.TABLES.items() if set(t.arms) & set(self.arms)]
        return sorted(int(n) for n in self.tables)

    def arm_options(self, arm, script, repeat, run_id, measure_h2d=False, prime=False, model="", unit=""):
        """What the workload of one arm repeat is given (its argv: .to_argv()); a sweep unit gives its model
        (run as model A) and its name."""
        return ArmOptions(arm=arm, script=script, run_id=run_id, repeat=repeat, unit=unit, model_a=model or self.model_a,
                          model_b=self.model_b, server_cmd=self.server_cmd, protocol=self.protocol,
                          fixed_output=self.fixed_output, ready_timeout=self.ready_timeout,
                          call_timeout=self.call_timeout, measure_h2d=measure_h2d,
                          cold_cache=self.cache == "cold", prime=prime)

    def to_manifest(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_stored(cls, stored):
        """The options a manifest's "options" object holds (kit/manifest.py migrates kit 0.1.0's first);
        BadRecord naming the first of the wrong type. Keys this kit does not know are left out."""
        known = {f.name: f for f in fields(cls)}
        wrong = [k for k, v in stored.items() if k in known and not _fits(v, known[k].type)]
        if wrong:
            raise BadRecord(f"its options do not read back ({wrong[0]!r} is a {type(stored[wrong[0]]).__name__})")
        return cls(**{k: tuple(v) if known[k].type is tuple else v for k, v in stored.items() if k in known})

    def with_(self, **changes):
        return replace(self, **changes)


def _fits(value, kind):
    """A manifest's option value has its field's type (JSON: a list for a tuple, an int for a float)."""
    if kind is tuple:
        return isinstance(value, list)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def parse_tables(values, all_tables=False):
    """('1', '4') or ('1,2',) or --all -> [1, 4]."""
    if all_tables and values:
        raise BadInput("give table numbers or --all, not both")
    if all_tables:
        return sorted(scenarios.TABLES)
    numbers = []
    for value in values:
        for t in filter(None, value.split(",")):
            t = t.strip().lower().removeprefix("table")
            if t not in [str(n) for n in scenarios.TABLES]:
                raise BadInput(f"unknown table {t!r}: the study has tables 1-5")
            if int(t) not in numbers:
                numbers.append(int(t))
    return numbers


def run_options(tables, all_tables, arms, run_id, resume, values):
    """`kit run`'s options from its arguments (checked when the run starts); None with --resume, which
    finishes a run with the options in its manifest."""
    if resume:
        if tables or all_tables or arms or run_id:
            raise BadInput("--resume finishes a run with its own tables, arms and id; give none of them")
        return None
    if run_id is not None:
        layout.check_run_id(run_id)
    numbers = parse_tables(tables, all_tables)
    if arms and numbers:
        raise BadInput("give tables or --arm, not both")
    if not arms and not numbers:
        raise BadInput("which tables? give numbers 1-5 (e.g. `kit run 1 4`) or --all")
    return RunOptions(tables=tuple(numbers), arms=tuple(dict.fromkeys(arms)), **values)


def sweep_options(models, levels, gpu_memory_gib, run_id, resume, values):
    """`kit sweep`'s options from its arguments (checked when the sweep starts); None with --resume.
    levels: None when not given (1,2)."""
    from kit import sweep
    if resume:
        if models or run_id or levels is not None:
            raise BadInput("--resume finishes a sweep with its own models, levels and id; give none of them")
        return None
    if not models:
        raise BadInput("which models? give --models M1,M2 (hub names or local folders)")
    return RunOptions(sweep_models=sweep.parse_models(models), sweep_levels=sweep.parse_levels(levels or "1,2"),
                      gpu_memory_gib=gpu_memory_gib, **values)


def sweep_addition(add_models, gpu_memory_gib, resume):
    """`kit sweep --resume RUN_ID --add-models M,...`: a kit.sweep.Addition (checked against the run when it is
    read: kit.manifest.add_sweep_models), or None. --gpu-memory-gib with --resume is for the added models."""
    from kit import sweep
    if add_models is None:
        if resume and gpu_memory_gib:
            raise BadInput("--gpu-memory-gib with --resume is for --add-models: the run's models keep their fit")
        return None
    if not resume:
        raise BadInput("--add-models adds models to a sweep run: give --resume RUN_ID too",
                       "start a new sweep with --models")
    return sweep.Addition(sweep.parse_models(add_models, "add-models"), gpu_memory_gib)


def field_meta(name):
    return next(f.metadata for f in fields(RunOptions) if f.name == name)


def flag(name):
    return name.replace("_", "-")


def check_model(value, option):
    """A local folder must exist; anything else must look like a hub name ('org/name')."""
    if not value.strip():
        raise BadInput(f"--{option} is empty", "give a model folder or a hub name like Qwen/Qwen3-0.6B")
    looks_local = value.startswith(("/", ".", "~")) or value.count("/") > 1
    if Path(value).expanduser().is_dir():
        return
    if looks_local:
        raise BadInput(f"--{option} {value}: no such folder", "give an existing model folder or a hub name like Qwen/Qwen3-0.6B")
    if not HUB_NAME.fullmatch(value):
        raise BadInput(f"--{option} {value!r} is neither a folder nor a hub name like Qwen/Qwen3-0.6B")


def parse_gpus(value):
    """'all' | 'none' | '0,1' | 'GPU-<uuid>,...' -> 'all', 'none' or a tuple of ids."""
    text = str(value).strip()
    if text in ("all", "none"):
        return text
    ids = tuple(g.strip() for g in text.split(","))
    bad = [g for g in ids if not (g.isdigit() or re.fullmatch(r"GPU-[0-9a-fA-F-]{8,}", g))]
    if not ids or bad or len(set(ids)) != len(ids):
        raise BadInput(f"--gpus {text!r}: not a GPU list", "use all, none, or distinct ids like 0,1")
    return ids
