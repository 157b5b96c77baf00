"""The guide of a sweep run (`kit sweep`): which sleep level for which model size, on the run's GPU.

    guide = build_guide(run)      a Guide (its to_json(): tables/guide.json)
    text(guide, fmt, width)       terminal / github (tables/guide.md) / plain / json

Per model (smallest first) and level, from the unit's cycles: the first switch (round 1's sleep + wake: a
level-1 server's first sleep also allocates the pinned host memory its later sleeps reuse, so it is the
slow one), and from the later cycles (rounds 2-3 x repeats) sleep, wake, switch, the first prompt after
the wake, host RAM held while asleep (the RSS the first
sleep added: level 1's pinned copy of the weights), GPU memory freed by a sleep, and the bandwidth bound:
the bytes a sleep or wake must move (the weights: the engine's "N GiB is backed up in CPU" at level 1,
else the config.json estimate) over the pinned host->GPU bandwidth measured on the unit's GPU. Level 1
copies the weights out on sleep and back on wake; level 2 drops them on sleep and reloads them on wake.
Then the crossover (from which size level 2's switch is faster than level 1's), for the first switch and
for the later ones, and level 1's RAM per size.
"""
from dataclasses import dataclass, replace

from tabulate import tabulate

from kit.results import metrics
from kit.results.metrics import Cell
from kit.results.records import Record, dumps
from kit.results.render import WIDTH, fmt_value, wrap
from kit.results.tables import NO_NUMBERS, UNMEASURED_H2D, arm_state, devices, gpu_name

SCHEMA = 1
MIB_PER_GIB = 1024
TABLEFMT = {"terminal": "simple", "github": "github", "plain": "plain"}
# (key, header, unit); the terminal view drops columns from the end until the table fits its width
COLUMNS = [("first_switch", "first switch s", "s"), ("sleep", "sleep s", "s"), ("wake", "wake s", "s"),
           ("switch", "switch s", "s"), ("prompt", "prompt s", "s"), ("ram_held_gib", "RAM held GiB", "GiB"),
           ("gpu_freed_gib", "GPU freed GiB", "GiB"), ("wake_x_bound", "wake/bound", "x"),
           ("sleep_x_bound", "sleep/bound", "x"), ("bound_s", "bound s", "s"), ("moved_gib", "moved GiB", "GiB")]


@dataclass(frozen=True)
class GuideRow(Record):
    """One model at one level: how its unit ran (state: as tables.ArmState's, or skipped with the reason), a
    Cell per measured column, and the bandwidth bound (None where not measured)."""
    model: str
    slug: str
    params: int | None
    size: str
    level: int
    unit: str
    state: str = "skipped"
    reason: str | None = None
    errors: tuple[str, ...] = ()
    failed_checks: int = 0
    first_sleep: Cell | None = None
    first_switch: Cell | None = None
    sleep: Cell | None = None
    wake: Cell | None = None
    switch: Cell | None = None
    prompt: Cell | None = None
    ttft: Cell | None = None
    ram_held_gib: Cell | None = None
    gpu_freed_gib: Cell | None = None
    h2d_gbps: float | None = None
    moved_gib: float | None = None
    moved_source: str | None = None
    bound_s: float | None = None
    wake_x_bound: float | None = None
    sleep_x_bound: float | None = None


@dataclass(frozen=True)
class Pair(Record):
    """Levels 1 and 2 of one model: their switch medians (first or later), and which level was faster."""
    model: str
    size: str
    params: int | None
    l1_s: float
    l2_s: float
    faster: int


@dataclass(frozen=True)
class Crossover(Record):
    """The size (model, params) from which level 2's switch (first or later) stays faster; None where there is
    none."""
    text: str
    pairs: tuple[Pair, ...]
    size: str | None = None
    params: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class Level1Ram(Record):
    model: str
    size: str
    gib: float | None


@dataclass(frozen=True)
class Skipped(Record):
    model: str
    size: str
    reason: str


@dataclass(frozen=True)
class Guide(Record):
    """A sweep run's guide (tables/guide.json). run: its facts (sweep part, GPU, options)."""
    run: dict
    rows: tuple[GuideRow, ...]
    skipped: tuple[Skipped, ...]
    crossover: Crossover
    first_crossover: Crossover
    level1_ram: tuple[Level1Ram, ...]
    notes: tuple[str, ...]
    schema: int = SCHEMA


def is_sweep(run):
    return bool(run.manifest.get("sweep"))


def _size_label(model):
    params = model["estimate"]["params"]
    return f"{params / 1e9:.2f} B" if params else "size n/a"


def _order(models):
    """Smallest first; models of unknown size after them, in the order given."""
    known = sorted((m for m in models if m["estimate"]["params"]), key=lambda m: m["estimate"]["params"])
    return known + [m for m in models if not m["estimate"]["params"]]


def _median(values):
    cell = metrics.stats(values)
    return cell.median if cell else None


def _cycles(reps):
    """(first, later): per repeat, round 1's {kind: event}; and rounds 2-3's."""
    out = {}
    for rep in reps:
        for e in rep.events:
            if e["round"] >= 1 and e["kind"] in ("sleep", "wake", "prompt"):
                out.setdefault((rep.repeat, e["round"]), {})[e["kind"]] = e
    cycles = sorted(out.items())
    return [c for (_, rnd), c in cycles if rnd == 1], [c for (_, rnd), c in cycles if rnd > 1]


def _switch(cycles):
    return metrics.stats(c["sleep"]["duration_s"] + c["wake"]["duration_s"] for c in cycles
                         if "sleep" in c and "wake" in c)


def _moved_gib(model, l1_reps):
    """(GiB a level-1 sleep backs up / a wake brings back, where the number comes from)."""
    backed = [metrics.backed_up_mib(e) for r in l1_reps for e in r.events if e["kind"] == "sleep"]
    backed = [b for b in backed if b]
    if backed:
        return round(_median(backed) / MIB_PER_GIB, 3), "engine log"
    if model["estimate"]["weights_gib"]:
        return model["estimate"]["weights_gib"], "config.json estimate"
    return None, None


def _row(run, model, level, l1_reps):
    row = GuideRow(model["name"], model["slug"], model["estimate"]["params"], _size_label(model), level,
                   model["units"][str(level)], reason=model["skipped"])
    if model["skipped"]:
        return row
    s = arm_state(run, row.unit, "sweep")
    row = replace(row, state=s.state, reason=None, errors=s.errors, failed_checks=len(s.failed_checks))
    return replace(row, **_cells(run, model, row.unit, level, l1_reps)) if s.has_numbers else row


def _cells(run, model, unit, level, l1_reps):
    """The measured columns of a unit with numbers: GuideRow's fields from sleep on."""
    reps = [r for r in run.units[unit] if r.ok]
    first, cycles = _cycles(reps)
    stat = metrics.stats
    cells = dict(first_sleep=stat(c["sleep"]["duration_s"] for c in first if "sleep" in c),
                 first_switch=_switch(first),
                 sleep=stat(c["sleep"]["duration_s"] for c in cycles if "sleep" in c),
                 wake=stat(c["wake"]["duration_s"] for c in cycles if "wake" in c),
                 switch=_switch(cycles),
                 prompt=stat(c["prompt"]["duration_s"] for c in cycles if "prompt" in c),
                 ttft=stat(c["prompt"].get("ttft_s") for c in cycles if "prompt" in c))
    firsts = [metrics.first_sleep(r.events, level) for r in reps]
    cells["ram_held_gib"] = stat(f[0] / MIB_PER_GIB for f in firsts if f)
    freed = [c["sleep"] for c in cycles if "sleep" in c and c["sleep"].get("gpu_mib_before") is not None
             and c["sleep"].get("gpu_mib_after") is not None]
    cells["gpu_freed_gib"] = stat((e["gpu_mib_before"] - e["gpu_mib_after"]) / MIB_PER_GIB for e in freed)
    cells["h2d_gbps"] = _median([run.h2d_gbps(unit, r) for r in reps])
    moved, source = _moved_gib(model, l1_reps)
    cells.update(moved_gib=moved, moved_source=source)
    if moved and cells["h2d_gbps"]:
        bound = moved * 2**30 / (cells["h2d_gbps"] * 1e9)
        cells["bound_s"] = metrics.num(bound)
        if cells["wake"]:
            cells["wake_x_bound"] = metrics.num(cells["wake"].median / bound)
        if level == 1 and cells["sleep"]:        # level 2 moves nothing on sleep: no bound
            cells["sleep_x_bound"] = metrics.num(cells["sleep"].median / bound)
    return cells


def crossover(rows, key="switch"):
    """From which size level 2's switch (key: "switch", the later cycles' median, or "first_switch") is faster
    than level 1's, at that size and every larger one measured: a Crossover, with a Pair per model measured
    at both levels. Its text starts with what it compares ("later switches: ", "first switch: ") and ends
    with SUSPECT where a unit behind a pair had a sleep check fail."""
    med = lambda r: getattr(r, key).median
    by_model = {}
    for r in rows:
        if getattr(r, key):
            by_model.setdefault(r.model, {})[r.level] = r
    both = [v for v in by_model.values() if 1 in v and 2 in v]
    pairs = tuple(Pair(v[1].slug, v[1].size, v[1].params, med(v[1]), med(v[2]), 2 if med(v[2]) < med(v[1]) else 1)
                  for v in both)
    found = _crossover_text(pairs)
    what = {"switch": "later switches", "first_switch": "first switch"}[key]
    suspect = [f"{r.slug} L{r.level}" for v in both for r in v.values() if r.state == "suspect"]
    return replace(found, text=f"{what}: {found.text}"
                   + (f" - SUSPECT: a sleep check failed ({', '.join(suspect)})" if suspect else ""))


def _crossover_text(pairs):
    """The verdict over the sizes measured at both levels. Models of one size are one step: a crossover lies
    between sizes, never inside one whose models disagree. A model of unknown size (its config.json lacks the
    sizes) has no place in the order: said, not placed."""
    unknown = [p.model for p in pairs if not p.params]
    aside = f" (not placed, size unknown: {', '.join(unknown)})" if unknown else ""
    sizes = {}
    for p in pairs:
        if p.params:
            sizes.setdefault(p.params, []).append(p)
    steps = list(sizes.values())       # pairs come in size order (build_guide's _order)
    if not steps:
        return Crossover("crossover: not measured (it needs levels 1 and 2 of at least one model"
                         + (" of known size)" if unknown else ")") + aside, pairs)
    won = [{p.faster for p in step} for step in steps]
    start = next((i for i in range(len(steps)) if all(w == {2} for w in won[i:])), None)
    largest = steps[-1][0].size
    if start is None:
        if won[-1] == {1, 2}:
            text = (f"no crossover up to {largest}: its models disagree (level 1's switch is faster for "
                    f"{_models(steps[-1], 1)}, level 2's for {_models(steps[-1], 2)})")
            return Crossover(text + aside, pairs)
        some = _at(steps, won, 2)
        text = (f"no crossover up to {largest}: level 1's switch is faster at the largest size measured"
                + (f" (level 2 was faster at {some} only)" if some else " and every smaller one"))
        return Crossover(text + aside, pairs)
    first = steps[start][0]
    at = dict(size=first.size, params=first.params, model=first.model)
    names = ", ".join(p.model for p in steps[start])
    if start == 0:
        span = f"{first.size} to {largest}" if len(steps) > 1 else f"one size, {largest}"
        return Crossover(f"no crossover: level 2's switch is faster than level 1's at every size measured "
                         f"({span})" + aside, pairs, **at)
    upto = "there" if start == len(steps) - 1 else f"there up to {largest}"
    below, won_below = steps[:start], won[:start]
    if all(w == {1} for w in won_below):
        smaller = f"level 1's is faster up to {below[-1][0].size}"
    else:
        smaller = f"below it level 1's is faster at {_at(below, won_below, 1)}; level 2 was also faster at " \
                  f"{_at(below, won_below, 2)}"
    return Crossover(f"crossover at {first.size} ({names}): level 2's switch is faster than level 1's from {upto}; "
                     f"{smaller}" + aside, pairs, **at)


def _at(steps, won, level):
    """The sizes where `level`'s switch was faster, naming the models of a size whose models disagree."""
    return ", ".join(s[0].size + ("" if w == {level} else f" ({_models(s, level)})")
                     for s, w in zip(steps, won) if level in w)


def _models(step, faster):
    return ", ".join(p.model for p in step if p.faster == faster)


def level1_ram(rows):
    """What level 1 costs in host RAM while asleep, per size."""
    return tuple(Level1Ram(r.model, r.size, r.ram_held_gib.median if r.ram_held_gib else None)
                 for r in rows if r.level == 1 and r.state not in ("skipped",) + NO_NUMBERS)


def _facts(run):
    """The run's facts; "added" only where models were added later (the guides of other runs stay as they were)."""
    m, part = run.manifest, run.manifest["sweep"]
    added = _added(part["models"])
    env = m.get("environment") or next((r.env for reps in run.units.values() for r in reps if r.env), {})
    return {"run_id": run.run_id, "complete": m.get("complete"), "gpu": gpu_name(env),
            "vllm": env.get("vllm_version"), "cache": run.options.cache, "repeat": run.options.repeat,
            "runtime": run.options.runtime, "fixed_output": run.options.fixed_output,
            "h2d_gbps": dict(sorted(run.h2d.items())), "levels": part["levels"],
            "gpu_memory_gib": part["gpu_memory_gib"], "gpu_memory_source": part["gpu_memory_source"],
            "server_args": part["server_args"]} | ({"added": added} if added else {})


def _added(models):
    """The models added to the run later (kit sweep --resume --add-models), a group per command: when, and the
    GPU memory their fit was made against (the run's gpu_memory_* are its first models')."""
    groups = {}
    for m in models:
        if m.get("added"):
            a = m["added"]
            groups.setdefault((a["at"], a["gpu_memory_gib"], a["gpu_memory_source"]), []).append(m["slug"])
    return [{"at": at, "models": slugs, "gpu_memory_gib": gib, "gpu_memory_source": source}
            for (at, gib, source), slugs in groups.items()]


def build_guide(run):
    part = run.manifest["sweep"]
    models = _order(part["models"])
    rows = []
    for model in models:
        l1_unit = model["units"].get("1")
        l1_reps = [r for r in run.units.get(l1_unit) or [] if r.ok] if l1_unit else []
        rows += [_row(run, model, level, l1_reps) for level in part["levels"]]
    skipped = tuple(Skipped(m["name"], _size_label(m), m["skipped"]) for m in models if m["skipped"])
    notes = ["switch = a cycle's sleep + the wake after it (level 2's wake: wake_up + reload_weights + "
             "reset_prefix_cache + a 1-token warm-up); prompt = the first prompt after that wake",
             f"first switch = round 1's (median over {run.options.repeat} repeat(s)): a level-1 server's first sleep "
             "also allocates the pinned host memory for the weights, which later sleeps reuse; sleep, wake, switch, "
             f"prompt = medians over the later cycles (rounds 2-3 x {run.options.repeat} repeat(s))",
             "RAM held = host RSS the first sleep added (level 1 keeps the weights in pinned host memory while asleep)",
             "bound = GiB moved / measured pinned host->GPU GB/s (the copy alone at full bandwidth); wake/bound 1.0 "
             "= at that physical limit. Level 1 moves the weights out on sleep and back on wake; level 2 drops them "
             "and reloads them on wake (from disk or page cache, then host->GPU)",
             "sizes: parameters counted from each model's config.json"]
    gpus = len(devices(run.manifest.get("jobs") or []))
    if gpus > 1:          # a sweep grown in a later session (--add-models) may have moved
        notes.append(f"the run's jobs ran on {gpus} different GPUs (host and GPU uuid in the manifest's jobs): a "
                     "comparison between models measured on different GPUs also holds any difference between the GPUs; "
                     "each GPU's host->GPU bandwidth is measured by the first job there, and a bound uses that of the "
                     "GPU its unit ran on")
    unmeasured = [r.unit for r in rows if r.moved_gib is not None and r.h2d_gbps is None]
    if unmeasured and run.h2d:
        notes.append(f"no bound for {', '.join(unmeasured)}: host->GPU GB/s {UNMEASURED_H2D}")
    return Guide(_facts(run), tuple(rows), skipped, crossover(rows), crossover(rows, "first_switch"),
                 level1_ram(rows), tuple(notes))


# -- text ----------------------------------------------------------------------------------------------
def _cell(value, unit):
    if value is None:
        return "-"
    if isinstance(value, Cell):
        value = value.median
    if unit == "x":
        return f"{value:.2f}"
    if unit == "GiB":
        return f"{value:.2f}"
    return fmt_value(value, unit)


def grid(guide, columns=COLUMNS):
    """Headers and rows of cells (text), as guide.md shows them."""
    headers = ["model", "size", "level"] + [h for _, h, _ in columns]
    lines = []
    for r in guide.rows:
        line = [r.slug, r.size, f"L{r.level}"]
        if r.state == "skipped":
            line += ["skipped"] + [""] * (len(columns) - 1)
        elif r.state in NO_NUMBERS:
            line += [r.state] + [""] * (len(columns) - 1)
        else:
            line += [_cell(getattr(r, k), u) for k, _, u in columns]
            line[2] += " SUSPECT" if r.state == "suspect" else ""
        lines.append(line)
    return headers, lines


def summary_lines(guide):
    lines = [guide.first_crossover.text, guide.crossover.text]
    label = _labels(guide.rows)
    ram = [f"{label[x.model]} {x.gib:.2f} GiB" for x in guide.level1_ram if x.gib is not None]
    why = ("not measured (the run has no level 1)" if 1 not in guide.run["levels"] else
           "n/a (no level-1 unit has numbers)" if not guide.level1_ram else "n/a (no RSS reading)")
    lines.append("level 1 holds in host RAM while asleep: " + ("; ".join(ram) if ram else why))
    bounds = [f"{label[r.model]} L{r.level} wake {r.wake_x_bound:.2f}x" for r in guide.rows if r.wake_x_bound]
    if bounds:
        lines.append("wake against the host->GPU bound: " + "; ".join(bounds))
    return lines


def _labels(rows):
    """{model: its size}, with its name where another model has the same size (a twin beside the hub model)."""
    sizes = {}
    for r in rows:
        sizes.setdefault(r.size, set()).add(r.model)
    return {r.model: r.size + (f" ({r.slug})" if len(sizes[r.size]) > 1 else "") for r in rows}


def header(guide):
    f = guide.run
    h2d = ", ".join(f"{_device(key)} {gbps:.1f} GB/s" for key, gbps in f["h2d_gbps"].items()) or "not measured"
    util = f["server_args"][f["server_args"].index("--gpu-memory-utilization") + 1]
    return [f"Guide: which sleep level for which model size - run {f['run_id']}" + ("" if f["complete"] else " (incomplete)"),
            f"GPU: {f['gpu'] or 'n/a'} | vLLM {f['vllm'] or 'n/a'} | host->GPU {h2d} | --cache {f['cache']}"
            f" | repeats {f['repeat']} | runtime {f['runtime']}",
            f"fit: --gpu-memory-utilization {util} x GPU memory ({_gpu_mem(f)})"] + [
            f"added {a['at']}: {', '.join(a['models'])}; fit against GPU memory {_gpu_mem(a)}"
            for a in f.get("added") or ()]


def _device(key):
    """A key of the run's "h2d" (kit.manifest.device_key), short: "host GPU-c850827f", or a lane's label."""
    host, sep, uuid = key.rpartition("/")
    return f"{host} {uuid[:12]}" if sep else key


def _gpu_mem(f):
    return f"{f['gpu_memory_gib']:.1f} GiB, {f['gpu_memory_source']}" if f["gpu_memory_gib"] else f["gpu_memory_source"]


def text(guide, fmt="terminal", width=WIDTH):
    if fmt == "json":
        return json_file(guide)
    columns = list(COLUMNS)
    while True:
        headers, lines = grid(guide, columns)
        table = tabulate(lines, headers, tablefmt=TABLEFMT[fmt], disable_numparse=True)
        if fmt != "terminal" or width is None or len(columns) <= 3 or max(map(len, table.splitlines())) <= width:
            break
        columns.pop()
    head = header(guide)
    if fmt == "github":
        head = [f"## {head[0]}", ""] + [line + "  " for line in head[1:]]
    tail = outcome_lines(guide) + ["", "notes:"] + [f"- {n}" for n in guide.notes]
    if fmt == "terminal" and width:
        head, tail = [wrap(x, width) for x in head], [wrap(x, width) for x in tail]
    return "\n".join([*head, "", table, "", *tail]) + "\n"


def outcome_lines(guide):
    """What the grid does not show: skipped and failed models, then the crossovers, RAM and bounds."""
    return ([f"skipped {s.model} ({s.size}): {s.reason}; no server started" for s in guide.skipped]
            + [f"FAILED {r.unit}: {'; '.join(r.errors)}" for r in guide.rows if r.state == "failed"]
            + summary_lines(guide))


def json_file(guide):
    return dumps(guide, indent=1)


def texts(run):
    """{file name: text} of a sweep run's guide: guide.md (GitHub, every column) and guide.json."""
    guide = build_guide(run)
    return {"guide.md": text(guide, "github"), "guide.json": json_file(guide)}
