"""What the site's pages show, as plain data, from the read side only: each run's tables (build_table's
Tables, the data `kit table` prints) and their grids (kit.results.render), the Comparisons of kit.results.compare,
the published numbers, and the tidy events. No file is read here that kit.results does not read."""
import hashlib
import json
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from kit import layout, runs
from kit.results import build_table, published, render
from kit.results import compare as comparing
from kit.results.tables import run_facts
from kit.workload import scenarios
from kit.workload.steps import base_arm

LONG_TEXT = 2000      # characters of one error or note shown on a page (the data files keep it whole)
EVENT_FIELDS = ("run", "gpu", "unit", "arm", "repeat", "seq", "round", "model", "kind", "ok", "level", "start_s",
                "duration_s", "ttft_s", "output_tokens", "gpu_mib_before", "gpu_mib_after", "rss_mib_before",
                "rss_mib_after", "parts", "error")


@dataclass
class Entry:
    """One input of the site: a run that loaded (run and tables set) or one that did not (error says why)."""
    source: Path                 # the run folder or bundle it came from
    slug: str = ""               # its name in the site (runs/<slug>.html)
    run: object = None
    tables: dict = field(default_factory=dict)      # number -> build_table's Table
    guide: dict | None = None    # a sweep's guide_view
    bundle: Path | None = None   # the bundle file to publish beside it
    error: str | None = None

    @property
    def name(self):
        return self.run.run_id if self.run else self.source.name


def shorten(text, limit=LONG_TEXT):
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]} [... {len(text) - limit:,} more characters]"


def slug_for(run_id, taken):
    """A file name for a run: its id when that is a plain run id, else a digest; unique among `taken`."""
    base = run_id if layout.RUN_ID.fullmatch(run_id or "") and ".." not in run_id and len(run_id) <= 100 \
        else "run-" + hashlib.sha256(str(run_id).encode()).hexdigest()[:12]
    slug, k = base, 1
    while slug in taken:
        k += 1
        slug = f"{base}-{k}"
    taken.add(slug)
    return slug


def safe_name(text):
    return re.sub(r"[^A-Za-z0-9._@-]", "_", text)


def gpu_type(facts):
    """What makes two runs' GPUs the same kind: the GPU name without the count ("2x NVIDIA H200" -> "NVIDIA H200")."""
    return re.sub(r"^\d+x ", "", facts.gpu or "?")


# ---------------------------------------------------------------- the matrix (index)

def _headline(table):
    """(switch A, switch B, total) ratios of a table's rows, formatted ('n/c': not comparable)."""
    out = []
    for key in (("switch", "A"), ("switch", "B"), ("total", None)):
        row = table.row(*key)
        ratio = row.ratio if row else None
        out.append(render.fmt_value(ratio, "ratio") if ratio is not None else "n/c" if row and row.not_comparable else "-")
    return out


def headline(table):
    """A table's headline for the matrix: its ratios and, when an arm has no numbers, why."""
    missing = [f"{s.arm} {s.state}" for s in table.arms if s.state != "ok"]
    if any(r.not_comparable for r in table.rows if r.metric in ("switch", "total")):
        missing.append("n/c: not comparable (loads in different compile-cache states)")
    if table.run.devices > 1:
        missing.append(f"the run's jobs ran on {table.run.devices} GPUs: a ratio also holds their difference")
    return {"ratios": _headline(table), "note": ", ".join(missing)}


def published_headlines():
    """[{label, cells: {number: headline or None}}] for each published source (A100 first)."""
    out = []
    for gpu in published.gpus():
        cells, label = {}, None
        for n in scenarios.TABLES:
            ref = published.pick(n, gpu)
            if ref is None:
                cells[n] = None
                continue
            label = label or f"published {published.label(ref)}"
            table = comparing.published_table(n, gpu)
            cells[n] = {"ratios": _headline(table), "note": f"blog figure {ref['figure']}"}
        out.append({"label": label or f"published {gpu}", "gpu": gpu, "cells": cells})
    return sorted(out, key=lambda r: (r["gpu"] != "a100", r["gpu"]))


def arm_problems(entry):
    """Units whose state is not ok in some table of the run, with the state."""
    seen = {}
    for table in entry.tables.values():
        for s in table.arms:
            if s.state not in ("ok", "not run"):     # not run: not part of this run
                seen.setdefault(s.unit, s.state)
    return [f"{unit} {state}" for unit, state in seen.items()]


def matrix_row(entry, bundle):
    """One row of the index: who, where, how it ended, and the headline of each table."""
    run = entry.run
    facts = run_facts(run)
    m = run.manifest
    state = runs._state(m)
    problems = arm_problems(entry)
    return {"slug": entry.slug, "run_id": run.run_id, "gpu": facts.gpu or "n/a", "vllm": facts.vllm or "n/a",
            "runtime": facts.runtime or "n/a", "cache": facts.cache or "n/a", "repeats": facts.repeat,
            "at_once": max(facts.at_once, 1), "date": (m.get("created") or "?")[:16].replace("T", " "),
            "commit": (m.get("git_commit") or "?")[:12], "state": state + (f"; {', '.join(problems)}" if problems else ""),
            "bad": bool(problems) or state != "complete", "bundle": bundle,
            "cells": {n: headline(entry.tables[n]) if n in entry.tables else None for n in scenarios.TABLES},
            "guide": entry.guide["headline"] if entry.guide else None}


def table_columns():
    return [{"number": n, "title": spec.title, "ratio": f"{spec.arms[1]}/{spec.arms[0]}"}
            for n, spec in scenarios.TABLES.items()]


# ---------------------------------------------------------------- a run's page

def grid_rows(headers, grid, keys=None):
    """Rows of cells for the templates; keys: per row, (metric, model) for data attributes."""
    return {"headers": headers, "rows": [{"key": keys[i] if keys else None, "cells": line} for i, line in enumerate(grid)]}


def loads_view(run):
    """The load breakdown as `kit table --loads --wide` shows it: the same grid, header and notes."""
    from kit.results import loads
    table = loads.build_loads(run)
    headers, grid = loads.grid(table, wide=True)
    return {"grid": grid_rows(headers, grid), "notes": list(table.notes)} if table.rows else None


def guide_view(run):
    """A sweep's guide as tables/guide.md shows it, in pieces for HTML, and its two crossover lines for the index
    row where a study run has its tables' ratios; None for a run of the study's tables."""
    from kit.results import guide as guides
    if not guides.is_sweep(run):
        return None
    g = guides.build_guide(run)
    return {"header": [shorten(x) for x in guides.header(g)[1:]], "grid": grid_rows(*guides.grid(g)),
            "outcome": [shorten(x) for x in guides.outcome_lines(g)], "notes": [shorten(x) for x in g.notes],
            "json": guides.json_file(g), "headline": ["guide: " + g.first_crossover.text, g.crossover.text]}


def table_view(table):
    """A table as `kit table --wide` shows it, in pieces for HTML: the same grids, lines and notes."""
    main = render.wide_grid(table)
    memory = render.memory_grid(table, True) if table.memory else None
    return {"number": table.number, "title": table.title, "ratio": table.ratio,
            "header": [shorten(x) for x in render.header_lines(table.run)],
            "states": [{"state": s.state, "line": shorten(render.state_line(s))} for s in table.arms],
            "main": grid_rows(*main, keys=[(r.metric, r.model or "-") for r in table.rows]),
            "memory": grid_rows(*memory, keys=[(r.metric, r.model) for r in table.memory]) if memory else None,
            "checks": [shorten(x) for x in render.check_lines(table)],
            "notes": [shorten(x) for x in table.notes]}


def checks_view(entry):
    """One line per unit: its state and sleep checks, from the tables' arm states."""
    seen = {}
    for table in entry.tables.values():
        for s in table.arms:
            if s.unit not in seen and s.state != "not run":
                seen[s.unit] = {"unit": s.unit, "title": s.title, "state": s.state, "repeats": s.repeats,
                                "passed": s.checks_passed, "failed": len(s.failed_checks),
                                "skipped": ", ".join(f"{v.count} {k}" for k, v in s.skipped_checks.items()),
                                "errors": [shorten(e) for e in s.errors]}
    return list(seen.values())


def provenance(run):
    """What made the numbers: command, kit, image, GPU and driver, models with their digests."""
    m, facts = run.manifest, run_facts(run)
    image = (m.get("runtime") or {}).get("image") or {}
    models = [{"key": k, "name": v.get("name"), "twin": v.get("twin"), "sha256": v.get("sha256")}
              for k, v in sorted((m.get("models") or {}).items()) if isinstance(v, dict)]
    models += [{"key": v.get("slug"), "name": v.get("name"), "twin": v.get("twin"), "sha256": v.get("sha256")}
               for v in (m.get("sweep") or {}).get("models") or () if isinstance(v, dict)]
    items = [("command", " ".join(map(str, m.get("command") or [])) or "n/a"),
             ("kit", f"{m.get('kit_version') or '?'} (commit {m.get('git_commit') or '?'})"),
             ("manifest schema", str(m.get("schema", 1))),
             ("created / ended (UTC)", f"{m.get('created') or '?'} / {m.get('ended') or '-'}"),
             ("runtime", f"{facts.runtime or 'n/a'}" + (f", GPU access {facts_gpu_access(m)}" if facts_gpu_access(m) else "")),
             ("GPU", f"{facts.gpu or 'n/a'}, driver {facts.driver or 'n/a'}, CUDA {facts.cuda or 'n/a'}"),
             ("vLLM / torch", f"{facts.vllm or 'n/a'} / {facts.torch or 'n/a'}"),
             ("protocol / output / cache", f"{facts.protocol} / {'fixed' if facts.fixed_output else 'not fixed'}"
                                           f" / {facts.cache}"),
             ("repeats / jobs at once", f"{facts.repeat} / {max(facts.at_once, 1)}")]
    if image:
        items += [("image", f"{image.get('tag') or '?'} ({image.get('id') or '?'})"),
                  ("base image", f"{image.get('base_image') or '?'} ({image.get('base_id') or '?'})")]
    items += [(f"resumed {r.get('at') or '?'}", _resume(r)) for r in m.get("resumes") or () if isinstance(r, dict)]
    return {"items": [(k, shorten(v)) for k, v in items], "models": models,
            "server_args": [(unit, shorten(" ".join(map(str, args or [])))) for unit, args in
                            sorted((m.get("server_args") or {}).items())]}


def _resume(record):
    """A resume's command, with the commit and image it ran (a sweep grown later may have run newer ones)."""
    image = ((record.get("runtime") or {}).get("image") or {}).get("tag")
    return " ".join(map(str, record.get("command") or ["?"])) + f" (commit {record.get('git_commit') or 'not recorded'}" \
        + (f", image {image})" if image else ")")


def facts_gpu_access(manifest):
    access = (manifest.get("runtime") or {}).get("gpu_access")
    return access.get("mode") if isinstance(access, dict) else None


# ---------------------------------------------------------------- compare pages

def mark(cell):
    """A compare Pair's ratio with kit compare's marks: 'apart' (ranges do not overlap), 'overlap'."""
    if cell.ratio is None:
        return "-"
    return render.fmt_value(cell.ratio, "ratio") + {False: " apart", True: " overlap", None: ""}[cell.overlap]


def compare_view(cmp):
    arms = list(scenarios.TABLES[cmp.number].arms)
    headers = ["metric", "model"] + [h for arm in arms for h in (f"{arm} a", f"{arm} b", "b/a")]
    grid = []
    for row in cmp.rows:
        line = [row.label, row.model or "-"]
        for arm in arms:
            c = row.arms[arm]
            line += [comparing._cell(c.a, cmp.a.arms[arm].state, row.unit),
                     comparing._cell(c.b, cmp.b.arms[arm].state, row.unit), mark(c)]
        grid.append(line)
    diff = [[k, shorten(repr_json(v["a"]), 400), shorten(repr_json(v["b"]), 400)] for k, v in cmp.manifest_diff.items()]
    return {"number": cmp.number, "title": cmp.title, "ratio": cmp.ratio,
            "sides": [shorten(comparing._side_line(k, side)) for k, side in (("a", cmp.a), ("b", cmp.b))],
            "grid": grid_rows(headers, grid, keys=[(r.metric, r.model or "-") for r in cmp.rows]),
            "diff": diff}


def repr_json(value):
    return json.dumps(value, sort_keys=True)


def published_compare(entry):
    """[{source, tables: [compare view]}]: the run against each published source, table by table."""
    out = []
    for gpu in published.gpus():
        views, missing = [], []
        for n, table in entry.tables.items():
            other = comparing.published_table(n, gpu)
            if other is None:
                missing.append(n)
                continue
            views.append(compare_view(comparing.compare(table, other, n, against_published=True)))
        out.append({"gpu": gpu.upper(), "tables": views, "missing": missing})
    return sorted(out, key=lambda s: (s["gpu"] != "A100", s["gpu"]))


def pairs(entries):
    """(a, b) for every two loaded runs of the same GPU type that share a table, in site order (a sweep has none:
    its guide is compared by eye, on its page)."""
    loaded = [e for e in entries if e.run]
    return [(a, b) for a, b in combinations(loaded, 2)
            if set(a.tables) & set(b.tables) and gpu_type(run_facts(a.run)) == gpu_type(run_facts(b.run))]


def pair_compare(a, b):
    numbers = [n for n in a.tables if n in b.tables]
    return [compare_view(comparing.compare(a.tables[n], b.tables[n], n)) for n in numbers]


def pair_slug(a, b):
    return f"{a.slug}--{b.slug}"


# ---------------------------------------------------------------- data

def event_rows(entry):
    """The tidy events of one run: one dict per event, EVENT_FIELDS in order."""
    gpu = run_facts(entry.run).gpu
    out = []
    for unit, reps in entry.run.units.items():
        for rep in reps:
            for e in rep.events:
                row = {k: e.get(k) for k in EVENT_FIELDS}
                row.update(run=entry.run.run_id, gpu=gpu, unit=unit, arm=base_arm(unit), repeat=rep.repeat)
                out.append(row)
    return out


def load_tables(run):
    return {n: build_table(run, n) for n in run.tables}
