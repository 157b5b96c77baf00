"""Tables from results: events.jsonl -> table dict -> text.

    run = load_run("results/<run-id>")            # or load_run_any("results/<run-id>.tar.gz")
    table = build_table(run, 1)                    # a JSON-able dict
    print(render(table, "github"))                 # github | plain | json
    write_tables("results/<run-id>", [1, 4])       # tables/table<N>.md and .json
    cmp = compare(run_a, run_b_or_"published", 1)  # two runs (or a run and the blog) side by side
    print(render_compare(cmp, "plain"))

Data flows one way: the report reads only a run's files (manifest.json, <arm>/r<k>/events.jsonl,
status.json, env.json) and kit/published.json. Output is deterministic: the same files give the same bytes.
"""
import json
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tabulate import tabulate

from kit import bundle
from kit import events as ev
from kit import scenarios

FORMATS = ("github", "plain", "json")
PUBLISHED_PATH = Path(__file__).with_name("published.json")
FIXED_NOTE = "output length fixed at max_tokens (ignore_eos)"
FREE_NOTE = "output length not fixed: a prompt stops at EOS or max_tokens (see the output tokens row)"

# (metric, label, unit); switch parts ("part:<name>") are inserted after "switch".
METRICS = [("load", "load", "s"), ("warmup", "warm-up", "s"), ("switch", "wake / switch", "s"),
           ("prompt", "prompt", "s"), ("ttft", "TTFT", "s"), ("output_tokens", "output tokens", "tok"),
           ("sleep", "sleep", "s"), ("sleep_setup", "sleep (set-up)", "s"), ("stop", "stop", "s"),
           ("total", "total", "s")]
MEMORY = [("gpu_freed_by_sleep", "GPU MiB freed by sleep", "MiB"),
          ("gpu_taken_by_wake", "GPU MiB taken back by wake", "MiB"),
          ("rss_first_sleep", "host RSS MiB added by first sleep", "MiB"),
          ("rss_peak", "peak host RSS MiB", "MiB"),
          ("wake_gbps", "wake GB/s (backed-up bytes / wake s)", "GB/s"),
          ("h2d_gbps", "host->GPU GB/s (measured once per run)", "GB/s"),
          ("wake_vs_h2d", "wake GB/s / host->GPU GB/s", "ratio")]
FACT_KEYS = ("gpu", "vllm", "torch", "cuda", "driver", "models", "protocol", "fixed_output", "cache",
             "repeat", "server_args")


# -- loading ---------------------------------------------------------------------------------------
@dataclass
class Repeat:
    repeat: int
    events: list
    status: dict | None
    env: dict
    error: str | None = None     # None: this repeat is usable

    @property
    def ok(self):
        return self.error is None


@dataclass
class Run:
    run_dir: Path
    manifest: dict
    arms: dict = field(default_factory=dict)   # arm -> [Repeat], by repeat index

    @property
    def run_id(self):
        return self.manifest.get("run_id") or self.run_dir.name


def _json_file(path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def load_run(run_dir):
    """Read a run directory (docs/results-layout.md). kit.events.SchemaError propagates (file:line)."""
    run_dir = Path(run_dir)
    manifest = _json_file(run_dir / "manifest.json")
    if manifest is None:
        raise FileNotFoundError(f"{run_dir}: no manifest.json (not a run directory)")
    run = Run(run_dir, manifest)
    planned = (manifest.get("options") or {}).get("arms") or list(manifest.get("arms") or {})
    on_disk = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and any(p.glob("r[0-9]*")))
    for arm in list(dict.fromkeys([*planned, *on_disk])):
        run.arms[arm] = _load_arm(run_dir / arm, (manifest.get("options") or {}).get("repeat") or 1)
    # host->GPU bandwidth is measured once per run (by its first arm); every arm is set against it
    h2d = (manifest.get("environment") or {}).get("h2d_gbps")
    for rep in (r for reps in run.arms.values() for r in reps):
        if rep.env.get("h2d_gbps") is None and h2d is not None:
            rep.env["h2d_gbps"] = h2d
    return run


def _load_arm(arm_dir, repeat):
    found = {int(p.name[1:]): p for p in arm_dir.glob("r[0-9]*") if p.name[1:].isdigit()}
    reps = [_load_repeat(found[k], k) for k in sorted(found)]
    reps += [Repeat(k, [], None, {}, f"no results (r{k} missing)") for k in range(1, repeat + 1) if k not in found]
    return sorted(reps, key=lambda r: r.repeat)


def _load_repeat(folder, k):
    status = _json_file(folder / "status.json")
    path = folder / "events.jsonl"
    events = ev.read(path) if path.exists() else None
    return Repeat(k, events or [], status, _json_file(folder / "env.json") or {}, _repeat_error(status, events))


def _repeat_error(status, events):
    if status is not None and not status.get("ok"):
        return status.get("error") or f"exit code {status.get('exit_code')}"
    if events is None:
        return "no events.jsonl"
    bad = next((e for e in events if not e["ok"]), None)
    if bad:
        return f"{bad['kind']} {bad['model'] or '-'} round {bad['round']}: {bad['error']}"
    if status is None and not any(e["kind"] == "total" for e in events):
        return "unfinished: no status.json and no total event"
    return None


def load_run_any(source):
    """A Run, a run directory, or a bundle (.tar.gz: extracted to a temporary folder and read)."""
    if isinstance(source, Run):
        return source
    path = Path(source)
    if not path.name.endswith((".tar.gz", ".tgz")):
        return load_run(path)
    top, contents, problems = bundle.read_members(path)   # the one reader that knows a safe member
    if problems:
        raise ValueError(f"{path}: {problems[0]}")
    if "manifest.json" not in contents:
        raise FileNotFoundError(f"{path}: no manifest.json in the bundle")
    with tempfile.TemporaryDirectory(prefix="sleepkit-") as tmp:
        run = load_run(bundle.unpack(contents, Path(tmp) / (top or "run")))   # read into memory here
    run.run_dir = path
    return run


# -- numbers ---------------------------------------------------------------------------------------
def _num(x):
    return round(float(x), 6)


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": _num(min(values)), "median": _num(statistics.median(values)), "max": _num(max(values)),
            "n": len(values)}


def _ratio(num, den):
    if not num or not den or not den["median"]:
        return None
    return _num(num["median"] / den["median"])


def _select(events, metric):
    """The events one metric is taken from (all models). The switch of a no-sleep arm is a restart: its load."""
    switch = "wake" if any(e["kind"] == "wake" for e in events) else "load"
    rules = {"load": ("load", None), "warmup": ("warmup", 0), "switch": (switch, 1), "prompt": ("prompt", 1),
             "ttft": ("prompt", 1), "output_tokens": ("prompt", 1), "sleep": ("sleep", 1),
             "sleep_setup": ("sleep", 0), "stop": ("stop", None), "total": ("total", None)}
    kind, rounds = rules["switch" if metric.startswith("part:") else metric]
    return [e for e in events if e["kind"] == kind
            and (rounds is None or (e["round"] == 0 if rounds == 0 else e["round"] >= 1))]


def _values(events, metric, model):
    chosen = [e for e in _select(events, metric) if metric == "total" or e["model"] == model]
    if metric.startswith("part:"):
        return [(e.get("parts") or {}).get(metric[5:]) for e in chosen]
    key = {"ttft": "ttft_s", "output_tokens": "output_tokens"}.get(metric, "duration_s")
    return [e.get(key) for e in chosen]


PART_ORDER = ("wake_up", "reload_weights", "reset_prefix_cache", "warmup")


def _part_names(event_lists):
    """Names of a switch's timed parts when some arm's switch has several (level 2), in switch order."""
    switches = [e for events in event_lists for e in _select(events, "switch")]
    if not any(len(e.get("parts") or {}) > 1 for e in switches):
        return []
    names = {p for e in switches for p in e.get("parts") or {}}
    return [p for p in PART_ORDER if p in names] + sorted(names - set(PART_ORDER))


def _metric_list(event_lists):
    out = []
    for metric, label, unit in METRICS:
        out.append((metric, label, unit))
        if metric == "switch":
            out += [(f"part:{p}", f"switch part: {p}", "s") for p in _part_names(event_lists)]
    return out


# -- memory ----------------------------------------------------------------------------------------
def _diffs(events, kind, sign):
    return [sign * (e["gpu_mib_before"] - e["gpu_mib_after"]) for e in events if e["kind"] == kind
            and e.get("gpu_mib_before") is not None and e.get("gpu_mib_after") is not None]


def _first_sleep(events, arm_level):
    """(RSS MiB added, level, MiB the engine backed up) of a server's first sleep, or None."""
    sleep = next((e for e in events if e["kind"] == "sleep"), None)
    if not sleep or sleep.get("rss_mib_before") is None or sleep.get("rss_mib_after") is None:
        return None
    return sleep["rss_mib_after"] - sleep["rss_mib_before"], sleep.get("level") or arm_level, _backed_up_mib(sleep)


def _backed_up_mib(sleep):
    """What the engine said it copied to the CPU, from the kit's engine_log check (kit/sleepcheck.py)."""
    for check in sleep.get("checks") or []:
        found = re.fullmatch(r"engine: ([\d.]+) GiB backed up in CPU", check.get("detail") or "")
        if check["check"] == "engine_log" and found:
            return float(found.group(1)) * 1024
    return None


def _wake_gbps(events, first, arm_level):
    """Effective wake bandwidth: bytes moved back / wake seconds. The bytes are what the engine backed up
    on the first level-1 sleep (its log line); without that line, the host RSS that sleep added."""
    if not first or first[1] != 1:
        return []
    mib = first[2] if first[2] else first[0]
    if mib <= 0:
        return []
    return [mib * 2**20 / 1e9 / e["duration_s"] for e in _select(events, "switch")
            if e["kind"] == "wake" and (e.get("level") or arm_level) == 1 and e["duration_s"] > 0]


def _memory_values(reps, model, arm_level):
    vals = {key: [] for key, _, _ in MEMORY}
    for rep in reps:
        mine = [e for e in rep.events if e["model"] == model]
        vals["gpu_freed_by_sleep"] += _diffs(mine, "sleep", 1)
        vals["gpu_taken_by_wake"] += _diffs(mine, "wake", -1)
        first = _first_sleep(mine, arm_level)
        vals["rss_first_sleep"] += [first[0]] if first else []
        rss = [e.get(k) for e in mine for k in ("rss_mib_before", "rss_mib_after") if e.get(k) is not None]
        vals["rss_peak"] += [max(rss)] if rss else []
        vals["wake_gbps"] += _wake_gbps(mine, first, arm_level)
        vals["h2d_gbps"] += [rep.env.get("h2d_gbps")]
    return vals


def _memory_rows(table_arms, usable, levels):
    vals = {(a, m): _memory_values(usable[a], m, levels[a]) for a in table_arms if usable[a] is not None
            for m in ("A", "B")}
    for v in vals.values():
        ratio = _ratio(_stats(v["wake_gbps"]), _stats(v["h2d_gbps"]))
        v["wake_vs_h2d"] = [ratio] if ratio is not None else []
    rows = []
    for key, label, unit in MEMORY:
        for model in ("A", "B"):
            cells = {a: _stats(vals[a, model][key]) if (a, model) in vals else None for a in table_arms}
            if any(cells.values()):
                rows.append({"metric": key, "label": label, "unit": unit, "model": model, "arms": cells})
    return rows


# -- the table ---------------------------------------------------------------------------------------
def _env_get(env, key):
    for k in (f"{key}_version", key):
        if env.get(k) is not None:
            return env[k]
    return None


def _gpu_name(env):
    names = [g.get("name") if isinstance(g, dict) else str(g) for g in env.get("gpus") or []]
    if not names:
        return env.get("gpu_name") or env.get("gpu")
    if len(set(names)) == 1:
        return names[0] if len(names) == 1 else f"{len(names)}x {names[0]}"
    return " + ".join(names)


def run_facts(run, arms=None):
    """What identifies a run: GPU, versions, models, protocol, options (used in headers and manifest diffs)."""
    m = run.manifest
    env = m.get("environment") or next((r.env for reps in run.arms.values() for r in reps if r.env), {})
    opts = m.get("options") or {}
    models = {k: {"name": v.get("name"), "twin": v.get("twin")} for k, v in sorted((m.get("models") or {}).items())}
    server_args = m.get("server_args") or {}
    return {"run_id": run.run_id, "gpu": _gpu_name(env), "vllm": _env_get(env, "vllm"),
            "torch": _env_get(env, "torch"), "cuda": _env_get(env, "cuda"), "driver": _env_get(env, "driver"),
            "models": models, "protocol": opts.get("protocol"), "fixed_output": bool(opts.get("fixed_output")),
            "cache": opts.get("cache"), "repeat": opts.get("repeat"), "complete": m.get("complete"),
            "server_args": {a: server_args.get(a) for a in (arms or sorted(server_args))}}


def _failed_checks(reps):
    out = []
    for rep in reps:
        for e in rep.events:
            for c in e.get("checks") or []:
                if not c["ok"]:
                    out.append({"repeat": rep.repeat, "seq": e["seq"], "kind": e["kind"], "model": e["model"],
                                "round": e["round"], "check": c["check"], "detail": c.get("detail")})
    return out


def _arm_state(run, arm, role):
    reps = run.arms.get(arm) or []
    errors = [f"r{r.repeat}: {r.error}" for r in reps if not r.ok] or ([] if reps else ["not run: no results"])
    checks = [c for r in reps if r.ok for e in r.events for c in e.get("checks") or []]
    failed = _failed_checks([r for r in reps if r.ok])
    state = "failed" if errors else "suspect" if failed else "ok"
    title = scenarios.ARMS[arm].title if arm in scenarios.ARMS else arm
    return {"arm": arm, "role": role, "title": title, "state": state, "repeats": len(reps), "errors": errors,
            "checks_passed": len(checks) - len(failed), "failed_checks": failed}


@lru_cache(maxsize=1)
def _published_text():
    return PUBLISHED_PATH.read_text(encoding="utf-8")


def published():
    """kit/published.json (made by scripts/make_published.py)."""
    return json.loads(_published_text())


def _ref_label(ref):
    return f"{ref['gpu']}, vLLM {ref['vllm']}"


def _published_refs(number):
    refs = published()["tables"][str(number)]["references"]
    return [{"figure": r["figure"], "gpu": r["gpu"], "vllm": r["vllm"], "label": _ref_label(r),
             "models": r["models"], "series": {a: v["series"] for a, v in r["arms"].items()},
             "post_totals": {a: (v["post_total"] or {}).get("text") for a, v in r["arms"].items()}}
            for r in refs], refs


def _ref_events(ref_arm):
    """A published series' events plus its (computed) total as a total event."""
    return ref_arm["events"] + [{"kind": "total", "model": None, "round": 0,
                                 "duration_s": ref_arm["total_s_computed"]}]


def _ref_cell(ref_arm, metric, model):
    values = _values(_ref_events(ref_arm), metric, model)
    cell = _stats(values)
    return dict(cell, values=values) if cell else None


def _rows(table_arms, sources, raw_refs):
    """sources: arm -> event list (None for a failed arm). One row per (metric, model) with any number."""
    lists = [s for s in sources.values() if s] + [r["arms"][a]["events"] for r in raw_refs for a in table_arms]
    test, control = table_arms
    rows = []
    for metric, label, unit in _metric_list(lists):
        for model in ([None] if metric == "total" else ["A", "B"]):
            row = {"metric": metric, "label": label, "unit": unit, "model": model,
                   "arms": {a: (_stats(_values(sources[a], metric, model)) if sources[a] is not None else None)
                            for a in table_arms}}
            row["ratio"] = _ratio(row["arms"][control], row["arms"][test])
            row["published"] = []
            for r in raw_refs:
                cells = {a: _ref_cell(r["arms"][a], metric, model) for a in table_arms}
                row["published"].append({"arms": cells, "ratio": _ratio(cells[control], cells[test])})
            if any(row["arms"].values()) or any(c for p in row["published"] for c in p["arms"].values()):
                rows.append(row)
    return rows


def _notes(facts, table_arms, refs):
    notes = [FIXED_NOTE if facts["fixed_output"] else FREE_NOTE]
    if "nosleep" in table_arms:
        notes.append("no-sleep arm: the switch is a full restart, i.e. the load of rounds 1-3")
    if any(m.get("twin") for m in facts["models"].values()):
        notes.append("models are twins (see the header): numbers are not the study models' numbers")
    for i, r in enumerate(refs, 1):
        totals = ", ".join(f"{a} {t}" for a, t in r["post_totals"].items() if t)
        models = ", ".join(f"{k} = {v}" for k, v in sorted(r["models"].items()))
        notes.append(f"published [{i}] {r['label']}: figure {r['figure']} ({models}); "
                     "total = sum of the figure's events"
                     + (f" (the post's text prints {totals})" if totals else "")
                     + "; the figures show no set-up sleeps")
    notes.append("ratio = control median / test median (for times: >1 means the test arm is faster)")
    return notes


def build_table(run, number):
    """One kit table (1-5) of a run as a JSON-able dict: header, arm states, rows, memory, published."""
    spec = scenarios.TABLES[number]
    table_arms = list(spec.arms)
    states = [_arm_state(run, a, role) for a, role in zip(table_arms, ("test", "control"))]
    usable = {s["arm"]: ([r for r in run.arms[s["arm"]] if r.ok] if s["state"] != "failed" else None)
              for s in states}
    sources = {a: ([e for r in reps for e in r.events] if reps is not None else None) for a, reps in usable.items()}
    levels = {a: scenarios.ARMS[a].sleep_level if a in scenarios.ARMS else None for a in table_arms}
    refs, raw_refs = _published_refs(number)
    facts = run_facts(run, table_arms)
    return {"table": number, "title": spec.title, "script": spec.script, "run": facts,
            "arms": states, "ratio": f"{table_arms[1]}/{table_arms[0]}",
            "rows": _rows(table_arms, sources, raw_refs),
            "memory": _memory_rows(table_arms, usable, levels),
            "published": refs, "notes": _notes(facts, table_arms, refs)}


# -- rendering ---------------------------------------------------------------------------------------
def _fmt(x, unit):
    if x is None:
        return "n/a"
    if unit == "s":
        return f"{x:.3f}"
    if unit in ("GB/s", "ratio"):
        return f"{x:.2f}"
    return f"{x:.1f}".removesuffix(".0")   # MiB, tokens: integers stay integers


def _range(cell, unit):
    return f"{_fmt(cell['min'], unit)}..{_fmt(cell['max'], unit)}" if cell else ""


def _models_line(facts):
    parts = [f"{k} = {v['name']}" + (f" (twin: {v['twin']})" if v.get("twin") else "")
             for k, v in facts["models"].items()]
    return "models: " + (", ".join(parts) or "n/a")


def _header_lines(facts):
    return [f"run {facts['run_id']}" + ("" if facts["complete"] else " (incomplete)")
            + f" | GPU: {facts['gpu'] or 'n/a'} | vLLM {facts['vllm'] or 'n/a'} | torch {facts['torch'] or 'n/a'}"
            + f" | CUDA {facts['cuda'] or 'n/a'} | driver {facts['driver'] or 'n/a'}",
            _models_line(facts),
            f"protocol: {facts['protocol'] or 'n/a'} | repeats: {facts['repeat'] or 'n/a'}"
            + f" | compile cache: {facts['cache'] or 'n/a'}"]


def _state_line(s):
    head = f"{s['role']} arm {s['arm']} ({s['title']}): "
    if s["state"] == "failed":
        return head + "FAILED - " + "; ".join(s["errors"])
    checks = f"{s['checks_passed']} checks passed, {len(s['failed_checks'])} failed"
    return head + ("SUSPECT - " if s["state"] == "suspect" else "ok - ") + f"{s['repeats']} repeat(s), {checks}"


def _arm_label(s):
    return s["arm"] + {"ok": "", "suspect": " SUSPECT", "failed": " FAILED"}[s["state"]]


def _arm_cells(cell, state, unit):
    if state == "failed":
        return ["FAILED", "", ""]
    return [_fmt(cell["median"], unit) if cell else "-", _range(cell, unit), str(cell["n"]) if cell else "0"]


def _arm_headers(states):
    return [h for s in states for h in (f"{_arm_label(s)} median", "min..max", "n")]


def _main_grid(table):
    states = table["arms"]
    suspect = " (SUSPECT)" if any(s["state"] == "suspect" for s in states) else ""
    headers = ["metric", "model"] + _arm_headers(states) + [table["ratio"] + suspect]
    for i, r in enumerate(table["published"], 1):
        headers += [f"pub[{i}] {s['arm']} ({r['label']})" for s in states] + [f"pub[{i}] {table['ratio']}"]
    grid = []
    for row in table["rows"]:
        line = [row["label"], row["model"] or "-"]
        for s in states:
            line += _arm_cells(row["arms"][s["arm"]], s["state"], row["unit"])
        line.append(_fmt(row["ratio"], "ratio") if row["ratio"] is not None else "-")
        for p in row["published"]:
            line += [_fmt(p["arms"][s["arm"]]["median"], row["unit"]) if p["arms"][s["arm"]] else "-"
                     for s in states]
            line.append(_fmt(p["ratio"], "ratio") if p["ratio"] is not None else "-")
        grid.append(line)
    return headers, grid


def _memory_grid(table):
    states = table["arms"]
    grid = [[row["label"], row["model"]] + [c for s in states
                                            for c in _arm_cells(row["arms"][s["arm"]], s["state"], row["unit"])]
            for row in table["memory"]]
    return ["memory", "model"] + _arm_headers(states), grid


def _tab(headers, grid, fmt):
    align = ["left", "left"] + ["right"] * (len(headers) - 2)
    return tabulate(grid, headers, tablefmt=fmt, disable_numparse=True, colalign=align)


def _check_lines(table):
    return [f"SUSPECT {s['arm']} r{c['repeat']} seq {c['seq']}: {c['kind']} {c['model'] or '-'} round {c['round']}"
            f" - check {c['check']} failed: {c['detail']}"
            for s in table["arms"] for c in s["failed_checks"]]


def _lines(items):
    return "\n".join(f"- {x}" for x in items)


def render(table, fmt="github"):
    """Text of a table dict: github (Markdown) | plain | json. Deterministic."""
    if fmt == "json":
        return json.dumps(table, indent=2, sort_keys=True)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    parts = [_lines(_header_lines(table["run"]) + [_state_line(s) for s in table["arms"]]),
             _tab(*_main_grid(table), fmt)]
    if table["memory"]:
        parts.append(_tab(*_memory_grid(table), fmt))
    if _check_lines(table):
        parts.append(_lines(_check_lines(table)))
    parts.append(_lines(table["notes"]))
    return "\n\n".join(parts) + "\n"


def tables_in(run):
    """The tables a run was made for (manifest options.tables), else those whose arms it has."""
    wanted = (run.manifest.get("options") or {}).get("tables")
    if wanted:
        return sorted(int(n) for n in wanted)
    return [n for n, t in scenarios.TABLES.items() if all(a in run.arms for a in t.arms)]


def write_tables(run_dir, numbers=None):
    """Write <run_dir>/tables/table<N>.md (github, with a title line) and .json; returns the paths."""
    run = load_run(run_dir)
    out = Path(run_dir) / "tables"
    out.mkdir(exist_ok=True)
    paths = []
    for n in numbers or tables_in(run):
        table = build_table(run, n)
        md, js = out / f"table{n}.md", out / f"table{n}.json"
        md.write_text(f"# Table {n}: {table['title']}\n\n" + render(table, "github"), encoding="utf-8")
        js.write_text(render(table, "json") + "\n", encoding="utf-8")
        paths += [md, js]
    return paths


# -- comparison --------------------------------------------------------------------------------------
def _published_side(number):
    """The published numbers of a table (its primary reference) in the shape of a measured side."""
    refs, raw = _published_refs(number)
    ref = raw[0]
    table_arms = list(scenarios.TABLES[number].arms)
    rows = _rows(table_arms, {a: _ref_events(ref["arms"][a]) for a in table_arms}, [])
    for row in rows:   # published cells carry their values too
        row["arms"] = {a: _ref_cell(ref["arms"][a], row["metric"], row["model"]) for a in table_arms}
    facts = {"run_id": f"published ({refs[0]['label']}, figure {ref['figure']})", "gpu": ref["gpu"],
             "vllm": ref["vllm"], "models": {k: {"name": v, "twin": None} for k, v in sorted(ref["models"].items())}}
    states = [{"arm": a, "state": "ok", "errors": []} for a in table_arms]
    return {"run": facts, "arms": states, "rows": rows}


def _short(name):
    return (name or "").rsplit("/", 1)[-1]


def manifest_diff(fa, fb, short_models=False):
    """Keys whose values differ between two runs' facts (only keys both know: the published side knows few).
    short_models: compare model names without their organisation (the blog writes "Qwen3-0.6B")."""
    diff = {}
    for key in FACT_KEYS:
        if key not in fa or key not in fb:
            continue
        va, vb = fa[key], fb[key]
        if key == "models" and short_models:
            va, vb = ({k: _short(m["name"]) for k, m in v.items()} for v in (va, vb))
        if va != vb:
            diff[key] = {"a": va, "b": vb}
    return diff


def compare(a, b, number):
    """Rows of one table from run a and run b (or "published") side by side, with b/a ratios and a manifest diff."""
    table_arms = list(scenarios.TABLES[number].arms)
    ta = build_table(load_run_any(a), number)
    tb = _published_side(number) if b == "published" else build_table(load_run_any(b), number)
    index_b = {(r["metric"], r["model"]): r for r in tb["rows"]}
    keys = [(r["metric"], r["model"]) for r in ta["rows"]]
    keys += [k for k in index_b if k not in keys]
    index_a = {(r["metric"], r["model"]): r for r in ta["rows"]}
    rows = []
    for key in keys:
        ra, rb = index_a.get(key), index_b.get(key)
        some = ra or rb
        arms = {}
        for arm in table_arms:
            ca, cb = (ra or {}).get("arms", {}).get(arm), (rb or {}).get("arms", {}).get(arm)
            arms[arm] = {"a": ca, "b": cb, "ratio": _ratio(cb, ca)}
        rows.append({"metric": key[0], "model": key[1], "label": some["label"], "unit": some["unit"], "arms": arms})
    side = lambda t: {"run": t["run"], "arms": {s["arm"]: {"state": s["state"], "errors": s["errors"]}
                                                for s in t["arms"]}}
    return {"table": number, "title": scenarios.TABLES[number].title, "a": side(ta), "b": side(tb),
            "rows": rows, "manifest_diff": manifest_diff(ta["run"], tb["run"], short_models=b == "published"),
            "ratio": "b/a of the medians"}


def _side_line(name, side):
    f = side["run"]
    states = ", ".join(f"{arm} {s['state'].upper()}" + (f" ({'; '.join(s['errors'])})" if s["errors"] else "")
                       for arm, s in side["arms"].items())
    return (f"{name}: {f['run_id']} | GPU: {f.get('gpu') or 'n/a'} | vLLM {f.get('vllm') or 'n/a'} | "
            f"{_models_line(f)} | arms: {states}")


def _cmp_cell(cell, state, unit):
    if state == "failed":
        return "FAILED"
    return _fmt(cell["median"], unit) if cell else "-"


def render_compare(cmp, fmt="github"):
    """Text of a compare() dict: github | plain | json."""
    if fmt == "json":
        return json.dumps(cmp, indent=2, sort_keys=True)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    arms = list(scenarios.TABLES[cmp["table"]].arms)
    headers = ["metric", "model"] + [h for arm in arms for h in (f"{arm} a", f"{arm} b", f"{arm} b/a")]
    grid = []
    for row in cmp["rows"]:
        line = [row["label"], row["model"] or "-"]
        for arm in arms:
            c = row["arms"][arm]
            line += [_cmp_cell(c["a"], cmp["a"]["arms"][arm]["state"], row["unit"]),
                     _cmp_cell(c["b"], cmp["b"]["arms"][arm]["state"], row["unit"]),
                     _fmt(c["ratio"], "ratio") if c["ratio"] is not None else "-"]
        grid.append(line)
    diff = [[k, json.dumps(v["a"], sort_keys=True), json.dumps(v["b"], sort_keys=True)]
            for k, v in cmp["manifest_diff"].items()]
    parts = [_lines([f"Table {cmp['table']}: {cmp['title']} - compare, ratio {cmp['ratio']}",
                     _side_line("a", cmp["a"]), _side_line("b", cmp["b"])]),
             _tab(headers, grid, fmt),
             tabulate(diff, ["differs", "a", "b"], tablefmt=fmt, disable_numparse=True) if diff
             else "- manifests agree on: " + ", ".join(FACT_KEYS)]
    return "\n\n".join(parts) + "\n"
