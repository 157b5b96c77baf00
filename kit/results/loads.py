"""What a run's server loads were made of: the load-breakdown table (apart from the five study tables).

Each load event carries a `breakdown` read from the server's log (kit/workload/serverlog.py; events
schema 3); runs written before that get it here from their server-<model>.log (backfill). One row per
unit, model and compile-cache state (a load that compiled is not averaged with one that did not), each
load cut into parts that add up to it:

    weights      "Model loading took X GiB and Y seconds"
    compile      the init-engine line's compilation seconds (else torch.compile's total)
    CUDA graphs  "Graph capturing finished in N secs" (vLLM logs whole seconds)
    engine rest  the init-engine seconds less compile and CUDA graphs (profiling, KV cache, warm-up)
    start-up     the measured load less weights and engine init: process start, imports, API server,
                 engine-core spawn, readiness poll

    table = build_loads(run);  loads_text(table, fmt, wide)
"""
from dataclasses import dataclass

from kit import layout
from kit.results import metrics, render
from kit.results.metrics import Cell
from kit.results.records import Record, dumps
from kit.results.tables import RunFacts, run_facts
from kit.workload import scenarios, serverlog
from kit.workload.steps import base_arm

SCHEMA = 1
PARTS = [("weights", "weights"), ("compile", "compile"), ("graphs", "graphs"),
         ("engine_rest", "engine rest"), ("startup", "start-up")]
CACHE_ORDER = {"miss": 0, "hit": 1, None: 2}
NOTES = [
    "parts of one load add up to its measured load: weights (\"Model loading took ... seconds\") + compile (the "
    "init-engine line's compilation seconds; vLLM 0.11.0: torch.compile's total) + CUDA graphs (\"Graph capturing "
    "finished in N secs\", whole seconds) + engine rest (init engine's seconds less compile and CUDA graphs: "
    "profiling, KV cache, warm-up) + start-up (the load less weights and engine init: process start, imports, API "
    "server, engine-core spawn, readiness poll). Each column is a median over the row's loads, so the columns' "
    "medians need not add up to the load's median",
    "cache: miss = vLLM compiled a graph in that start; hit = it loaded the compiled graphs from its compile cache; "
    "? = the log does not say (e.g. no compilation)",
    "graphs = CUDA-graph capture; 1st log: process start to the server's first output line, measured by the kit "
    "(within start-up; n/a for runs written before events schema 3); GiB: the weights' size in GPU memory",
]


@dataclass(frozen=True)
class LoadRow(Record):
    """The loads of one unit and model in one compile-cache state (None: the log does not say): a Cell of the
    measured load, of each part (PARTS; None where no load has it), of the first log line and the weights' GiB;
    without_parts: how many of its loads lack a part; cache_keys: the compile-cache keys they used."""
    unit: str
    arm: str
    model: str
    cache: str | None
    n: int
    load: Cell | None
    parts: dict[str, Cell | None]
    first_log: Cell | None
    weights_gib: Cell | None
    without_parts: int
    cache_keys: tuple[str, ...]


@dataclass(frozen=True)
class LoadTable(Record):
    """The load-breakdown table of a run (tables/loads.json). run: the header facts (tables.run_facts)."""
    run: RunFacts
    rows: tuple[LoadRow, ...]
    notes: tuple[str, ...]
    schema: int = SCHEMA
    kind: str = "loads"


# -- backfill (runs before events schema 3) ----------------------------------------------------------
def backfill(events, folder):
    """Give the load events of schema < 3 a breakdown from the repeat's server logs, in place: the n-th
    load of model M is the n-th start in server-M.log. first_log_s stays None (the kit did not measure it)."""
    starts = {}
    for e in events:
        if e["kind"] != "load" or e.get("schema", 1) >= 3 or "breakdown" in e:
            continue
        model = e["model"]
        if model not in starts:
            path = folder / layout.server_log(model)
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
            starts[model] = iter(serverlog.segments(text))
        segment = next(starts[model], None)
        e["breakdown"] = serverlog.breakdown(segment) if segment is not None else None
    return events


# -- the table -----------------------------------------------------------------------------------------
def parts(event):
    """A load's parts (name -> seconds), or None where the log lacks one of them."""
    b = event.get("breakdown") or {}
    got = [b.get(k) for k in ("weights_s", "compile_s", "graphs_s", "engine_init_s")]
    if any(v is None for v in got):
        return None
    weights, compile_s, graphs, init = got
    return {"weights": weights, "compile": compile_s, "graphs": graphs,
            "engine_rest": metrics.num(init - compile_s - graphs),
            "startup": metrics.num(event["duration_s"] - weights - init)}


def _unit_order(unit):
    arms = list(scenarios.ARMS)
    arm = base_arm(unit)
    return (arms.index(arm) if arm in arms else len(arms), unit)


def _row(unit, model, cache, loads):
    split = [parts(e) for e in loads]
    known = [p for p in split if p]
    b = [e.get("breakdown") or {} for e in loads]
    return LoadRow(unit, base_arm(unit), model, cache, len(loads),
                   load=metrics.stats([e["duration_s"] for e in loads]),
                   parts={name: metrics.stats([p[name] for p in known]) for name, _ in PARTS},
                   first_log=metrics.stats([x.get("first_log_s") for x in b]),
                   weights_gib=metrics.stats([x.get("weights_gib") for x in b]),
                   without_parts=len(split) - len(known),
                   cache_keys=tuple(sorted({x["cache_key"] for x in b if x.get("cache_key")})))


def build_loads(run):
    """The LoadTable of a run: a row per unit, model and cache state. The loads of usable repeats only (those
    the five tables take their numbers from)."""
    rows = []
    for unit in sorted(run.units, key=_unit_order):
        loads = [e for r in run.units[unit] if r.ok for e in r.events if e["kind"] == "load" and e["ok"]]
        for model in ("A", "B"):
            groups = {}
            for e in loads:
                if e["model"] == model:
                    groups.setdefault((e.get("breakdown") or {}).get("compile_cache"), []).append(e)
            rows += [_row(unit, model, cache, groups[cache]) for cache in sorted(groups, key=CACHE_ORDER.get)]
    notes = list(NOTES)
    missing = sum(r.without_parts for r in rows)
    if missing:
        notes.append(f"{missing} load(s) have no parts: their server log lacks a line of the breakdown "
                     "(or the log is missing); they count in n and the load column only")
    return LoadTable(run_facts(run), tuple(rows), tuple(notes))


# -- text ----------------------------------------------------------------------------------------------
def _cell(cell, wide):
    if not cell:
        return "n/a"
    text = f"{cell.median:.2f}"
    return text + (f" ({cell.min:.2f}..{cell.max:.2f})" if wide and cell.n > 1 else "")


def grid(table, wide=False):
    """Narrow (80 columns): unit and model in one column, the cache state with its count of loads, 'rest'
    for the rest of engine init, and no first-log or GiB columns."""
    parts = lambda r: [_cell(r.parts[name], wide) for name, _ in PARTS]
    if not wide:
        headers = ["unit", "cache", "load"] + [label if name != "engine_rest" else "rest" for name, label in PARTS]
        return headers, [[f"{r.unit} {r.model}", f"{r.cache or '?'} x{r.n}", _cell(r.load, False)]
                         + parts(r) for r in table.rows]
    headers = ["unit", "model", "cache", "n", "load"] + [label for _, label in PARTS] + ["1st log", "GiB"]
    return headers, [[r.unit, r.model, r.cache or "?", str(r.n), _cell(r.load, wide)] + parts(r)
                     + [_cell(r.first_log, wide), _cell(r.weights_gib, False)] for r in table.rows]


def loads_text(table, fmt="terminal", wide=False):
    """The load-breakdown table as text (fmt as render.text: terminal, github, plain or json)."""
    if fmt == "json":
        return json_file(table)
    wide = wide or fmt == "github"
    width = render.WIDTH if fmt == "terminal" and not wide else None
    headers, lines = grid(table, wide)
    parts_text = ["Load breakdown: what each load was made of (seconds, median"
                  + (" (min..max)" if wide else "") + " of a row's loads)",
                  render.bullets(render.header_lines(table.run), width),
                  render.tab(headers, lines, render.TABLEFMT[fmt]) if lines else "no loads",
                  render.bullets(table.notes, width)]
    return "\n\n".join(parts_text) + "\n"


def markdown(table):
    """tables/loads.md"""
    return "# " + loads_text(table, "github", wide=True)


def json_file(table):
    return dumps(table)
