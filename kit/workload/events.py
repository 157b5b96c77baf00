"""The event record: the one interface between the workload (writer) and reports (readers).

One JSON object per line in events.jsonl. Standard library only: this runs inside any vLLM image.
Versions: 1 had no `schema` field; 2 adds it and lets a check be skipped (`ok: null`, the reason in
`detail`); 3 adds a load's `breakdown`, read from the server's log (kit/workload/serverlog.py). A reader
takes every version up to SCHEMA and names the file and line of a newer one.
"""
import json
import math

from kit.workload import jsonfile

SCHEMA = 3
LIMIT = 64 * jsonfile.MiB    # the largest events.jsonl read: an arm writes tens of KiB
KINDS = ("load", "warmup", "sleep", "wake", "prompt", "stop", "total")
MODELS = ("A", "B", None)

# field -> (allowed types, required)
FIELDS = {
    "schema": ((int,), False),
    "run": ((str,), True),
    "arm": ((str,), True),             # the arm, or `<arm>@<script>` for a seed-protocol variant
    "repeat": ((int,), True),
    "seq": ((int,), True),
    "kind": ((str,), True),
    "model": ((str, type(None)), True),
    "round": ((int,), True),          # 0 = set-up (first loads, warm-ups), 1..3 = switching rounds
    "start_s": ((float, int), True),  # monotonic offset from the arm's start
    "duration_s": ((float, int), True),
    "ok": ((bool,), True),
    "error": ((str, type(None)), True),
    "level": ((int, type(None)), False),          # sleep level of sleep/wake events
    "parts": ((dict, type(None)), False),         # name -> seconds: the timed steps of a switch
    "ttft_s": ((float, int, type(None)), False),
    "output_tokens": ((int, type(None)), False),
    "gpu_mib_before": ((int, type(None)), False),  # GPU memory used (NVML, all visible devices)
    "gpu_mib_after": ((int, type(None)), False),
    "rss_mib_before": ((int, type(None)), False),  # host RSS of the server's process tree
    "rss_mib_after": ((int, type(None)), False),
    "checks": ((list, type(None)), False),        # [{"check": name, "ok": bool or null (skipped), "detail"}]
    "breakdown": ((dict, type(None)), False),     # load events, schema 3: BREAKDOWN
}
SECONDS = (float, int, type(None))
# a load's breakdown: what the server's log says the load was made of (+ the kit's first_log_s)
BREAKDOWN = {
    "compile_cache": ("hit", "miss", None),  # miss: a graph was compiled in this start; hit: loaded, none compiled
    "compile_s": SECONDS,        # the init-engine line's compilation seconds, else the torch.compile total
    "weights_gib": SECONDS,      # "Model loading took X GiB and Y seconds"
    "weights_s": SECONDS,
    "graphs_s": SECONDS,         # CUDA-graph capture (vLLM logs whole seconds)
    "engine_init_s": SECONDS,    # "init engine (profile, create kv cache, warmup model) took X s"
    "first_log_s": SECONDS,      # kit-measured: process start -> the server's first output
    "cache_key": (str, type(None)),   # the compile-cache hash folder (torch_compile_cache/<key>/)
}


class SchemaError(ValueError):
    pass


def validate(record, where="event"):
    if not isinstance(record, dict):
        raise SchemaError(f"{where}: not a JSON object")
    version = record.get("schema", 1)
    if isinstance(version, int) and version > SCHEMA:
        raise SchemaError(f"{where}: events schema {version} is newer than this kit reads ({SCHEMA}); "
                          "upgrade sleepkit to read this run")
    for name, (types, required) in FIELDS.items():
        if name not in record:
            if required:
                raise SchemaError(f"{where}: missing field {name!r}")
            continue
        value = record[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise SchemaError(f"{where}: field {name!r} has the wrong type ({type(value).__name__})")
    unknown = set(record) - set(FIELDS)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if record["kind"] not in KINDS:
        raise SchemaError(f"{where}: unknown event kind {record['kind']!r}")
    if record["model"] not in MODELS:
        raise SchemaError(f"{where}: model must be 'A', 'B' or null")
    _check_numbers(record, where)
    if record.get("breakdown") is not None:
        _check_breakdown(record, version, where)
    for check in record.get("checks") or []:
        if not (isinstance(check, dict) and isinstance(check.get("check"), str)
                and (isinstance(check.get("ok"), bool) or (check.get("ok") is None and version >= 2))):
            raise SchemaError(f"{where}: malformed check {check!r}")
    return record


def _check_numbers(record, where):
    """Every number finite (a NaN duration would pass for a measurement), and parts map names to seconds."""
    numbers = [(name, v) for name, v in record.items() if isinstance(v, float)]
    for part, v in (record.get("parts") or {}).items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise SchemaError(f"{where}: part {part!r} is not a number of seconds")
        numbers.append((f"parts.{part}", float(v)))
    bad = next((name for name, v in numbers if not math.isfinite(v)), None)
    if bad:
        raise SchemaError(f"{where}: field {bad!r} is not a finite number")


def _check_breakdown(record, version, where):
    b = record["breakdown"]
    if not isinstance(version, int) or version < 3 or record["kind"] != "load":
        raise SchemaError(f"{where}: a breakdown belongs on a load event of schema 3 or newer")
    if set(b) != set(BREAKDOWN):
        raise SchemaError(f"{where}: breakdown keys must be {', '.join(BREAKDOWN)}")
    for key, allowed in BREAKDOWN.items():
        value = b[key]
        ok = value in allowed if key == "compile_cache" else (
            isinstance(value, allowed) and not isinstance(value, bool)
            and not (isinstance(value, float) and not math.isfinite(value)))
        if not ok:
            raise SchemaError(f"{where}: breakdown {key!r} has a wrong value ({value!r})")


class Writer:
    """Appends validated events to events.jsonl, flushing each line (a crash loses nothing written)."""

    def __init__(self, path, **common):
        self.common = common
        self.seq = 0
        self.file = open(path, "a", encoding="utf-8")

    def write(self, **fields):
        self.seq += 1
        record = validate({"schema": SCHEMA, **self.common, "seq": self.seq, **fields})
        self.file.write(json.dumps(record, sort_keys=True) + "\n")
        self.file.flush()
        return record

    def close(self):
        self.file.close()


def read(path):
    """All events of one events.jsonl; SchemaError names the file and line of the first bad one (bytes
    that are not UTF-8, JSON that is not a record, a file above LIMIT)."""
    events = []
    try:
        text = jsonfile.decode(jsonfile.read_bytes(path, LIMIT), path)
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                events.append(validate(jsonfile.load_json(line, f"{path}:{number}"), where=f"{path}:{number}"))
    except jsonfile.RecordError as e:
        raise SchemaError(str(e)) from None
    return events
