"""The run directory's layout, named in one place (docs/results-layout.md describes it for people).

    results/<run-id>/
      manifest.json              RunDir.manifest_path
      <unit>/r<k>/               RunDir.repeat_dir(unit, k): events.jsonl, env.json, status.json,
                                 server-A.log, server-B.log, workload.log (+ slurm.json)
      tables/  figures/
      .lock                      kit/runlock.py (bundles and readers leave it out)
"""
import errno
import json
import os
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from kit.errors import BadInput, BadRecord, DiskFull, NotFound
from kit.workload import events, jsonfile

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 2       # 1: no "schema" key (kit 0.1.0); 2: typed options, jobs, schema key
EVENTS, STATUS, ENV, WORKLOAD_LOG = "events.jsonl", "status.json", "env.json", "workload.log"
TABLES, FIGURES = "tables", "figures"
LOCK = ".lock"            # kit.runlock: which `kit run` owns the run now; not part of the run's record
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_RUN_ID = 100          # a folder name, a bundle name (+ .tar.gz) and Slurm/Docker job names stay short
REFERENCE = "reference"   # results/reference/ holds committed reference runs, not a run itself
RESULTS = "results"       # --results-dir when neither it nor KIT_RESULTS_DIR is given (kit.cli)
# The largest file of each kind a reader takes (bytes); anything larger is damage, refused before reading.
MiB = jsonfile.MiB
SIZE_LIMITS = {MANIFEST: 16 * MiB,     # 10,000 jobs' records are about 5 MiB
               EVENTS: events.LIMIT}   # 64 MiB
SMALL_JSON_LIMIT = 1 * MiB             # status.json, env.json, slurm.json: a few hundred bytes each


def server_log(model):
    return f"server-{model}.log"


def check_run_id(run_id):
    if len(run_id or "") > MAX_RUN_ID:
        raise BadInput(f"run id {run_id[:20]!r}... has {len(run_id)} characters", f"use at most {MAX_RUN_ID}")
    if not RUN_ID.fullmatch(run_id or "") or ".." in run_id:
        raise BadInput(f"run id {run_id!r} is not a run id", "use letters, digits, '.', '_' and '-'")
    return run_id


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    @property
    def run_id(self):
        return self.path.name

    @property
    def manifest_path(self):
        return self.path / MANIFEST

    @property
    def tables_dir(self):
        return self.path / TABLES

    @property
    def figures_dir(self):
        return self.path / FIGURES

    def repeat_dir(self, unit, k):
        return self.path / unit / f"r{k}"

    def repeat_dirs(self, unit):
        """{k: folder} of the repeats of one unit found on disk."""
        found = {}
        for p in (self.path / unit).glob("r[0-9]*"):
            if p.is_dir() and p.name[1:].isdigit():
                found[int(p.name[1:])] = p
        return found

    def units_on_disk(self):
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and self.repeat_dirs(p.name))

    def exists(self):
        return self.manifest_path.is_file()

    def read_manifest(self):
        """The manifest as a dict; NotFound when missing, BadRecord when unreadable or from a newer kit."""
        return parse_manifest(read_text(self.manifest_path, "manifest"), self.manifest_path)

    def write_manifest(self, manifest):
        write_json(self.manifest_path, dict(manifest, schema=MANIFEST_SCHEMA))


def size_limit(name):
    """The size limit of a run's file by its name (manifest.json, events.jsonl, or a small JSON file)."""
    return SIZE_LIMITS.get(name, SMALL_JSON_LIMIT)


def read_text(path, what, where=None):
    """A run's file as text: NotFound when missing, BadRecord when above its size limit or not UTF-8.
    where: the name messages give it (default: the path)."""
    where = where or path
    try:
        return jsonfile.decode(jsonfile.read_bytes(path, size_limit(Path(path).name), where), where)
    except FileNotFoundError:
        raise NotFound(f"{where}: no {what} there") from None
    except jsonfile.RecordError as e:
        raise BadRecord(str(e)) from None


def load_json(text, where):
    """json.loads for a run's records (kit.workload.jsonfile.load_json): BadRecord naming `where` for
    anything that is not a record (not JSON, NaN or Infinity, a depth bomb)."""
    try:
        return jsonfile.load_json(text, where)
    except jsonfile.RecordError as e:
        raise BadRecord(str(e)) from None


def parse_manifest(text, where):
    try:
        manifest = jsonfile.load_json(text, where)
    except jsonfile.RecordError as e:
        raise BadRecord(str(e), "the run's manifest is damaged; restore it from its bundle") from None
    if not isinstance(manifest, dict):
        raise BadRecord(f"{where}: not a JSON object")
    version = manifest.get("schema", 1)
    if not isinstance(version, int) or version > MANIFEST_SCHEMA:
        raise BadRecord(f"{where}: manifest schema {version!r} is newer than this kit reads ({MANIFEST_SCHEMA})",
                        "upgrade sleepkit to read this run")
    check_manifest_shape(manifest, where)
    return manifest


# the type of each key a reader uses, where the manifest has it (kit 0.1.0's lack some)
MANIFEST_SHAPE = {"run_id": str, "created": (str, type(None)), "ended": (str, type(None)), "complete": bool,
                  "runtime": dict, "options": dict, "models": dict, "units": list, "server_args": dict,
                  "environment": (dict, type(None)), "h2d": dict, "jobs": list, "resumes": list, "command": list}


def check_manifest_shape(manifest, where):
    """BadRecord naming the first key of the wrong type (an option's type: RunOptions.from_manifest)."""
    for key, types in MANIFEST_SHAPE.items():
        if key in manifest and not isinstance(manifest[key], types):
            raise BadRecord(f"{where}: {key!r} has the wrong type ({type(manifest[key]).__name__})",
                            "the run's manifest is damaged; restore it from its bundle")
    if not all(isinstance(j, dict) for j in manifest.get("jobs") or []):
        raise BadRecord(f"{where}: a job record is not a JSON object", "restore the manifest from its bundle")


def now(timestamp=None):
    """UTC wall-clock time with milliseconds, of now or of a Unix timestamp: records only (durations are
    measured on a monotonic clock)."""
    when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_json(path, data):
    """Atomically: a reader never sees half a file."""
    write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_text(path, text):
    """Atomically, through path.tmp; a write that fails (a full disk) leaves the old file and no .tmp."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def replacing(path):
    """A temporary path (path.tmp) for the block to write; it replaces path when the block ends, and is
    removed when the block fails."""
    tmp = Path(str(path) + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:     # a failed write() names no file
            e.filename = str(path)
        raise


def disk_full(error, doing):
    """DiskFull (one line) for an OSError that says the disk or quota is full; any other error as it is."""
    if not (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
        return error
    where = Path(error.filename).parent if error.filename else None
    return DiskFull(f"{doing}: {error.strerror}" + (f" (writing {error.filename})" if error.filename else ""),
                    f"free space in {where}" if where else "free space where the kit writes")


def read_json(path):
    """A small JSON object of a run (status.json, env.json), or None when absent; BadRecord when broken."""
    try:
        text = read_text(path, Path(path).name)
    except NotFound:
        return None
    record = load_json(text, path)
    if not isinstance(record, dict):
        raise BadRecord(f"{path}: not a JSON object")
    return record


def results_root(results_dir):
    root = Path(results_dir)
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        raise NotFound(f"results dir {results_dir} is not a readable folder",
                       "pass --results-dir DIR or set KIT_RESULTS_DIR")
    return root


def list_runs(results_dir):
    """[(RunDir, manifest or the BadRecord that reading it raised)] of every run in a results dir."""
    found = []
    for p in sorted(results_root(results_dir).iterdir()):
        run = RunDir(p)
        if p.name == REFERENCE or not run.exists():
            continue
        try:
            found.append((run, run.read_manifest()))
        except BadRecord as e:
            found.append((run, e))
    return found


def pick_run(results_dir, run_id=None, say=None):
    """The named run (a run id, or a run folder's path), or the latest readable one (damaged runs are passed
    over, not fatal). A run id not in results_dir, or the latest run when results_dir has none, is looked
    for in its reference/ folder (the committed reference runs); say(line) is told which run was picked then."""
    if run_id and ("/" in run_id or os.sep in run_id):
        run = RunDir(run_id)
        if not run.exists():
            raise NotFound(f"{run_id!r} is not a run id nor a run folder (no {MANIFEST} there)",
                           "list the runs with `kit ls`")
        return run
    if run_id:
        for fallback, root in enumerate((results_root(results_dir), Path(results_dir) / REFERENCE)):
            run = RunDir(root / check_run_id(run_id))
            if run.exists():
                if fallback and say:
                    say(f"{run_id}: not in {results_dir}, using the reference run {run.path}")
                return run
        raise NotFound(f"no run {run_id!r} in {results_dir} (nor in {Path(results_dir) / REFERENCE})",
                       "list the runs with `kit ls`")
    good = [(m.get("created") or "", run.run_id, run) for run, m in list_runs(results_dir) if isinstance(m, dict)]
    reference = Path(results_dir) / REFERENCE
    if not good and reference.is_dir():
        good = [(m.get("created") or "", run.run_id, run) for run, m in list_runs(reference) if isinstance(m, dict)]
        if good and say:
            say(f"no runs in {results_dir}: using the latest reference run, {max(good)[2].path}")
    if not good:
        raise NotFound(f"no runs in {results_dir}", "start one with `kit run 1`")
    return max(good)[2]
