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

MANIFEST = "manifest.json"  # read and written by kit/manifest.py
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
