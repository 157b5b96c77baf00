"""A run's manifest.json, in one place: its keys and their types (FIELDS), a new run's (`new`, for `kit run`
and `kit adopt`), reading it (`read_dict`: the JSON object, checked; `read`: the typed record, Manifest, with
older schemas migrated once, in `Manifest.from_dict`: kit 0.1.0's options and units, schema 2's "h2d"),
writing it back (`write`: the same JSON, at SCHEMA), and the stricter check `kit bundle verify` makes
(`problems`).
"""
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path

from kit import __version__, doctor, layout, sweep, twins
from kit.errors import BadInput, BadRecord, KitError
from kit.options import CACHES, RunOptions, check_model
from kit.runtimes import runtime_class
from kit.workload import jsonfile, scenarios
from kit.workload.options import defaults as arm_defaults

SCHEMA = 3       # 1: no "schema" key (kit 0.1.0); 2: typed options, jobs, schema key; 3: "h2d" keyed by device
KIT_ROOT = Path(__file__).resolve().parents[1]
NULL = type(None)
DAMAGED = "the run's manifest is damaged; restore it from its bundle"
# key: (its type for every reader, where the manifest has it (object: not checked; kit 0.1.0's lack some keys,
#       and a run being written may have no "created" yet),
#       the type `kit bundle verify` requires it to have (None: not required))
FIELDS = {"run_id": (str, str), "kit_version": (object, str), "git_commit": (object, (str, NULL)),
          "command": (list, list), "created": ((str, NULL), str), "ended": ((str, NULL), (str, NULL)),
          "complete": (bool, bool), "runtime": (dict, dict), "options": (dict, dict), "models": (dict, dict),
          "server_args": (dict, dict), "environment": ((dict, NULL), (dict, NULL)),
          "units": (list, None), "h2d": (dict, None), "jobs": (list, None), "resumes": (list, None)}


@dataclass
class Manifest:
    """What the kit reads of a manifest, typed. Every other key (kit_version, command, server_args, stand_in,
    sweep, group, adopted, ...) is in `rest`, written back as it was."""
    options: RunOptions
    run_id: str | None = None
    units: list = field(default_factory=list)        # the planned units' names (kit/plan.py)
    models: dict = field(default_factory=dict)       # {"A": model_info, "B": ...}; {} for a sweep (rest["sweep"])
    runtime: dict = field(default_factory=dict)
    created: str | None = None
    ended: str | None = None
    complete: bool = False
    environment: dict | None = None
    h2d: dict = field(default_factory=dict)          # device_key -> host->GPU GB/s measured there
    jobs: list = field(default_factory=list)
    resumes: list = field(default_factory=list)
    schema: int = SCHEMA          # as read: an older one is migrated on reading and written back as SCHEMA
    rest: dict = field(default_factory=dict)

    @property
    def stand_in(self):
        return self.rest.get("stand_in")

    @property
    def sweep(self):
        return self.rest.get("sweep")

    def update(self, **values):
        for key, value in values.items():
            if key in _TYPED:
                setattr(self, key, value)
            else:
                self.rest[key] = value

    @classmethod
    def from_dict(cls, data, where=layout.MANIFEST):
        """The record of a checked manifest (read_dict); kit 0.1.0's gets its options and units here.
        BadRecord when its options do not read back. Shares data's lists and dicts."""
        version = data.get("schema", 1)
        stored = dict(data.get("options") or {})
        if version < 2:
            stored.update(_legacy_options(data))
        options = _options(stored, where)
        # kit 0.1.0 recorded no units: its units were its arms
        units = data["units"] if "units" in data else list(options.arms) or scenarios.arms_for(options.tables)
        return cls(options=options, units=list(units), schema=version, h2d=h2d_by_device(data),
                   **{k: data[k] for k in _TYPED - {"options", "units", "schema", "h2d"} if k in data},
                   rest={k: v for k, v in data.items() if k not in _TYPED})

    def to_dict(self):
        typed = {k: getattr(self, k) for k in _TYPED - {"options", "schema"}}
        return {**self.rest, **typed, "options": self.options.to_manifest(), "schema": SCHEMA}


_TYPED = {f.name for f in fields(Manifest)} - {"rest"}


def device_key(job):
    """Where a job record ran, as "h2d" keys it: "host/GPU uuid"; a job without a GPU uuid (no NVML, Slurm's
    "job N" lanes, an adopted run) by its lane's label. The kit measures host->GPU once per key."""
    uuid = (job.get("gpu") or {}).get("uuid")
    return f"{job.get('host')}/{uuid}" if uuid else job.get("lane")


def h2d_by_device(data):
    """A manifest's "h2d" as {device_key: GB/s}. Before schema 3 it was {lane label: GB/s}, measured by the
    first job a lane ran, once per run: a resume on another GPU under the same label measured nothing. So a
    lane's number goes to the device of the lane's earliest recorded job when that job ran before the first
    resume (it measured) or every job of the lane ran on one device; else it stays under the lane's label,
    which no job with a GPU uuid reads: such a job's device has no number."""
    h2d = dict(data.get("h2d") or {})
    if data.get("schema", 1) >= 3:
        return h2d
    resumed = min((r.get("at") or "" for r in data.get("resumes") or []), default=None)
    out = {}
    for lane, gbps in h2d.items():
        jobs = sorted((j for j in data.get("jobs") or [] if j.get("lane") == lane), key=lambda j: j.get("started") or "")
        first = jobs[0] if jobs else None
        if first and (resumed is None or (first.get("started") or "") < resumed
                      or len({device_key(j) for j in jobs}) == 1):
            out.setdefault(device_key(first), gbps)
        else:
            out.setdefault(lane, gbps)
    return out


def _options(stored, where):
    try:
        return RunOptions.from_stored(stored)
    except BadRecord as e:
        raise BadRecord(f"{where}: {e.message}", DAMAGED) from None
    except (TypeError, ValueError) as e:
        raise BadRecord(f"{where}: options do not read back ({e})", DAMAGED) from None


def _legacy_options(data):
    """The options kit 0.1.0 kept outside its flat "options": the models, the runtime (docker's image, GPUs
    and Hugging Face cache); and it had no cache policy (its caches were per start: cold)."""
    runtime, models, default = data.get("runtime") or {}, data.get("models") or {}, arm_defaults()
    out = {"model_a": models.get("A", {}).get("name", default["model_a"]),
           "model_b": models.get("B", {}).get("name", default["model_b"]), "runtime": runtime.get("name", "docker")}
    if runtime.get("name") == "docker":
        gpus = runtime.get("gpus", "all")
        out.update(image=(runtime.get("image") or {}).get("tag") or "",
                   gpus=",".join(gpus) if isinstance(gpus, list) else gpus, hf_cache=runtime.get("hf_cache", ""))
    if (data.get("options") or {}).get("cache") not in CACHES:
        out["cache"] = "cold"
    return out


# -- reading and writing ---------------------------------------------------------------------------------
def parse(text, where):
    """The manifest as a dict: BadRecord when it is no JSON object, from a newer kit, or a key has the
    wrong type."""
    try:
        data = jsonfile.load_json(text, where)
    except jsonfile.RecordError as e:
        raise BadRecord(str(e), DAMAGED) from None
    if not isinstance(data, dict):
        raise BadRecord(f"{where}: not a JSON object")
    version = data.get("schema", 1)
    if not isinstance(version, int) or version > SCHEMA:
        raise BadRecord(f"{where}: manifest schema {version!r} is newer than this kit reads ({SCHEMA})",
                        "upgrade sleepkit to read this run")
    check_shape(data, where)
    return data


def check_shape(data, where):
    """BadRecord naming the first key of the wrong type (an option's type: RunOptions.from_stored)."""
    for key, (types, _) in FIELDS.items():
        if key in data and not isinstance(data[key], types):
            raise BadRecord(f"{where}: {key!r} has the wrong type ({type(data[key]).__name__})", DAMAGED)
    if not all(isinstance(j, dict) for j in data.get("jobs") or []):
        raise BadRecord(f"{where}: a job record is not a JSON object", DAMAGED)


def read_dict(run_dir):
    """The manifest of a run folder (layout.RunDir) as a checked dict (parse); NotFound when missing."""
    return parse(layout.read_text(run_dir.manifest_path, "manifest"), run_dir.manifest_path)


def read(run_dir):
    """The manifest of a run folder as a Manifest."""
    return Manifest.from_dict(read_dict(run_dir), run_dir.manifest_path)


def write(run_dir, record):
    layout.write_json(run_dir.manifest_path, record.to_dict())


def problems(data):
    """What `kit bundle verify` finds wrong in a parsed manifest (parse): the keys it requires and their
    types, then the options, the models' and runtime's names. Returns (data, [problem]); (None, [problem])
    when a required key is missing or of the wrong type (nothing more can be checked then)."""
    found = [f"manifest.json: missing key {k!r}" for k, (_, need) in FIELDS.items() if need and k not in data]
    found += [f"manifest.json: {k!r} has the wrong type ({type(data[k]).__name__})"
              for k, (_, need) in FIELDS.items() if need and k in data and not isinstance(data[k], need)]
    if found:
        return None, found
    try:
        Manifest.from_dict(data).options.check(here=False)
    except (TypeError, ValueError, KitError) as e:
        found.append(f"manifest.json: options do not read back ({getattr(e, 'message', e)})")
    found += [f"manifest.json: models lacks {m!r}" for m in ("A", "B") if "sweep" not in data   # a sweep's: per unit
              and (not isinstance(data["models"].get(m), dict) or "name" not in data["models"][m])]
    if "name" not in data["runtime"]:
        found.append("manifest.json: runtime lacks 'name'")
    return data, found


# -- a new run's -----------------------------------------------------------------------------------------
def new(run_id, options, units, command):
    """A new run's manifest. A sweep's models are in its "sweep" part (kit/sweep.py), one per unit, and units
    that do not fit the GPU are left out of its units (the part says why); "models" holds a study run's
    models A and B."""
    part = sweep_record(options) if options.sweep_models else None
    units = [u for u in units if u.name not in sweep.skipped_units(part)]
    record = Manifest(run_id=run_id, options=options, units=[u.name for u in units], runtime={"name": options.runtime},
                      models={} if part else {"A": model_info(options.model_a), "B": model_info(options.model_b)},
                      created=layout.now(),
                      rest={"kit_version": __version__, "git_commit": git_commit(), "command": command,
                            "server_args": {u.name: scenarios.ALL_ARMS[u.arm].server_args() for u in units},
                            "server_env": scenarios.SERVER_ENV, "stand_in": doctor.stand_in(options)})
    if part:
        record.rest["sweep"] = part
    return record


def sweep_record(options, describe=None):
    """The manifest's "sweep" part (kit/sweep.py): each model's fit to the run's GPUs, decided before any start."""
    cls = runtime_class(options)
    chosen = cls.host_gpus(options) if cls.uses_host_gpus else None
    return sweep.record(options, describe or model_info, chosen, cls.hub_dir(options))


def add_sweep_models(record, addition, command, describe=None):
    """Models added to a sweep run (`kit sweep --resume RUN_ID --add-models ...`, a kit.sweep.Addition): they
    join its options' sweep_models and its "sweep" part (fitted against this host's GPU memory now, with when
    and by which command: kit.sweep.added_entries), and their units that fit join its units and server_args,
    so the run is incomplete until they are done. BadInput, the record unchanged, for a run that is no sweep
    or models that --models would refuse or that collide with the run's. Returns the added entries."""
    check_addition(record, addition)     # again: record was re-read under the lock, and another resume may have added
    part, added = record.sweep, addition.models
    options = record.options.with_(sweep_models=record.options.sweep_models + added)
    cls = runtime_class(options)
    chosen = cls.host_gpus(options) if cls.uses_host_gpus else None
    entries = sweep.added_entries(part, added, options.with_(gpu_memory_gib=addition.gpu_memory_gib),
                                  describe or model_info, chosen, cls.hub_dir(options),
                                  {"at": layout.now(), "command": command})
    units = {e["units"][str(level)]: sweep.arm_for(level) for e in entries if not e["skipped"]
             for level in part["levels"]}
    part["models"] += entries
    record.options = options
    record.units += list(units)
    record.rest.setdefault("server_args", {}).update({u: scenarios.ALL_ARMS[a].server_args() for u, a in units.items()})
    record.complete = False
    return entries


def check_addition(record, addition):
    """BadInput unless the models of addition (kit.sweep.Addition) can join the run: see add_sweep_models."""
    if not record.sweep:
        raise BadInput(f"--add-models: run {record.run_id} is not a sweep (kit sweep); it has no models to add to")
    sweep.check_added(record.sweep, addition.models)
    record.options.with_(sweep_models=record.options.sweep_models + addition.models,
                         gpu_memory_gib=addition.gpu_memory_gib).check(here=False)     # the checks of --models
    for model in addition.models:
        check_model(model, "add-models")


def git_commit():
    """The kit's commit; SLEEPKIT_GIT_COMMIT names it for a copy without .git (e.g. carried offline)."""
    if os.environ.get("SLEEPKIT_GIT_COMMIT"):
        return os.environ["SLEEPKIT_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(KIT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(KIT_ROOT), "status", "--porcelain", "--", "kit"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def model_info(name):
    """Name, local path and a content checksum (a twin's own digest when it has one)."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return {"name": name, "path": None, "sha256": None}
    twin = path / twins.RECORD
    if twin.exists():
        info = json.loads(twin.read_text())
        return {"name": name, "path": str(path.resolve()), "sha256": info.get("digest"), "twin": info.get("name")}
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return {"name": name, "path": str(path.resolve()), "sha256": digest.hexdigest()}
