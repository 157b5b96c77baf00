"""Two loaded runs (or a run and the published numbers) side by side, one table at a time.

    cmp = compare(table_a, table_b, number)     Tables from build_table, or published_table(number, gpu)
    print(compare_text(cmp))                    cmp: a Comparison; its to_json() is `kit compare --format json`
"""
import json
from dataclasses import dataclass, fields

from tabulate import tabulate

from kit.results import metrics, published
from kit.results.metrics import CacheCounts, Cell
from kit.results.records import Record, dumps, plain
from kit.results.render import (FORMATS, NOT_COMPARABLE, TABLEFMT, UNKNOWN_MARK, WIDTH, bullets, fmt_value,
                                models_line, tab, text_width)
from kit.results.tables import (FACT_KEYS, NO_NUMBERS, SCHEMA, ArmState, ModelFacts, PublishedFacts, RunFacts, Table,
                                rows as table_rows)
from kit.workload import scenarios


@dataclass(frozen=True)
class Pair(Record, metrics.CacheVerdict):
    """One arm's number on side a and on side b: b/a of their medians, whether their ranges overlap, and the
    compile-cache verdict of the loads behind the two."""
    a: Cell | None
    b: Cell | None
    ratio: float | None
    overlap: bool | None
    cache_state: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CompareRow(Record):
    metric: str
    model: str | None
    label: str
    unit: str
    arms: dict[str, Pair]


@dataclass(frozen=True)
class SideArm(Record):
    state: str
    errors: tuple[str, ...]
    loads: CacheCounts | None


@dataclass(frozen=True)
class Side(Record):
    """One side of a comparison: its run facts and how each arm ran."""
    run: RunFacts | PublishedFacts
    arms: dict[str, SideArm]

    @classmethod
    def of(cls, table):
        return cls(table.run, {s.arm: SideArm(s.state, s.errors, s.loads) for s in table.arms})


@dataclass(frozen=True)
class Comparison(Record):
    number: int
    title: str
    a: Side
    b: Side
    rows: tuple[CompareRow, ...]
    manifest_diff: dict
    ratio: str = "b/a of the medians"
    schema: int = SCHEMA

    def to_json(self):
        out = super().to_json()
        out["table"] = out.pop("number")
        return out


def published_table(number, gpu=None):
    """The published numbers of a table as a Table (rows, run facts, states; no memory, sources or notes);
    None when the source has no reference for this table."""
    ref = published.pick(number, gpu)
    if ref is None:
        return None
    spec = scenarios.TABLES[number]
    table_arms = list(spec.arms)
    rows = table_rows(table_arms, {a: published.events(ref, a) for a in table_arms}, [])
    facts = PublishedFacts(f"published ({ref['label']}, figure {ref['figure']})", ref["gpu"], ref["vllm"],
                           {k: ModelFacts(v, None) for k, v in sorted(ref["models"].items())}, **published.FACTS)
    arms = tuple(ArmState(a, a, "published", scenarios.ARMS[a].title, "ok") for a in table_arms)
    return Table(number, spec.title, facts, arms, rows, ratio=f"{table_arms[1]}/{table_arms[0]}")


def _short(name):
    return (name or "").rsplit("/", 1)[-1]


def _differences(key, va, vb):
    """{key: {a, b}} where two facts differ. A per-arm fact (a dict with null for an arm a side did not run)
    is compared arm by arm, over the arms both sides ran: an arm one side lacks is not a difference."""
    if isinstance(va, dict) and isinstance(vb, dict) and None in (*va.values(), *vb.values()):
        both = [k for k in va if va[k] is not None and vb.get(k) is not None]
        return {f"{key}.{k}": {"a": va[k], "b": vb[k]} for k in both if va[k] != vb[k]}
    return {key: {"a": va, "b": vb}} if va != vb else {}


def manifest_diff(fa, fb, short_models=False):
    """Keys whose values differ between two sides' facts (keys the published side lacks are left out), as JSON
    values. short_models: compare model names without their organisation (the blog writes "Qwen3-0.6B")."""
    diff = {}
    stated = {f.name for f in fields(fa)} & {f.name for f in fields(fb)}
    for key in [k for k in FACT_KEYS if k in stated]:
        va, vb = plain(getattr(fa, key)), plain(getattr(fb, key))
        if key == "at_once" and not (va and vb):     # 0: the run recorded no job times (kit 0.1.0's first runs)
            continue
        if key == "models" and short_models:
            va, vb = ({k: _short(m["name"]) for k, m in v.items()} for v in (va, vb))
        diff.update(_differences(key, va, vb))
    return diff


def _pair(ra, rb, arm):
    """One arm's Pair of row ra (side a) and rb (side b), either None where that side lacks the row. The
    compile-cache verdict sets the loads behind a's number against those behind b's."""
    ca, cb = ra and ra.arms.get(arm), rb and rb.arms.get(arm)
    counts = {side: r.cache[arm] for side, r in (("a", ra), ("b", rb)) if r and arm in r.cache}
    state, reason = metrics.cache_verdict(counts)
    ratio = None if state == metrics.MIXED else metrics.ratio(cb, ca)
    return Pair(ca, cb, ratio, metrics.overlap(ca, cb), state, reason)


def compare(ta, tb, number, against_published=False):
    table_arms = list(scenarios.TABLES[number].arms)
    index_a = {(r.metric, r.model): r for r in ta.rows}
    index_b = {(r.metric, r.model): r for r in tb.rows}
    rows = []
    for key in list(index_a) + [k for k in index_b if k not in index_a]:
        ra, rb = index_a.get(key), index_b.get(key)
        some = ra or rb
        rows.append(CompareRow(key[0], key[1], some.label, some.unit, {arm: _pair(ra, rb, arm) for arm in table_arms}))
    return Comparison(number, scenarios.TABLES[number].title, Side.of(ta), Side.of(tb), tuple(rows),
                      manifest_diff(ta.run, tb.run, short_models=against_published))


def _side_line(name, side):
    f = side.run
    states = ", ".join(f"{arm} {s.state.upper()}" + (f" ({'; '.join(s.errors)})" if s.errors else "")
                       for arm, s in side.arms.items())
    return (f"{name}: {f.run_id} | GPU: {f.gpu or 'n/a'} | vLLM {f.vllm or 'n/a'} | "
            f"{models_line(f)} | arms: {states}")


def cache_found(side):
    """What one side's load events say of the compile cache, per arm: 'l1 compiled 0 of 2 loads, ...'."""
    said = []
    for arm, s in side.arms.items():
        c = s.loads
        if c and c.n:
            known = c.n - c.unknown
            said.append(f"{arm} {c.n} loads, cache unknown" if not known else
                        f"{arm} compiled {c.compiled} of {known} loads" + (f" ({c.unknown} more unknown)" if c.unknown else ""))
    return ", ".join(said) or "not stated"


def _cell(cell, state, unit):
    if state in NO_NUMBERS:
        return state.upper() if state == "failed" else state
    return fmt_value(cell.median, unit) if cell else "-"


def _ratio(c):
    if c.not_comparable:
        return NOT_COMPARABLE
    if c.ratio is None:
        return "-"
    return (fmt_value(c.ratio, "ratio") + (UNKNOWN_MARK if c.cache_state == "unknown" else "")
            + (" apart" if c.overlap is False else ""))


def _grid(cmp, arms, named):
    """metric, model, then per arm: a, b, b/a (column names with the arm when `named`); rows with a number."""
    headers = ["metric", "model"] + [h for arm in arms for h in ((f"{arm} a", f"{arm} b", "b/a ×") if named
                                                                 else ("a", "b", "b/a ×"))]
    grid = []
    for row in cmp.rows:
        if all(row.arms[arm].a is None and row.arms[arm].b is None for arm in arms):
            continue                  # a row of the other arm (one grid per arm)
        label = "- " + row.metric[5:] if row.metric.startswith("part:") else row.label
        line = [label, row.model or "-"]
        for arm in arms:
            c = row.arms[arm]
            line += [_cell(c.a, cmp.a.arms[arm].state, row.unit), _cell(c.b, cmp.b.arms[arm].state, row.unit), _ratio(c)]
        grid.append(line)
    return headers, grid


def grids(cmp, tablefmt, width=None):
    """Both arms in one grid; where that is wider than `width`, one grid per arm under its name."""
    arms = list(scenarios.TABLES[cmp.number].arms)
    one = tab(*_grid(cmp, arms, True), tablefmt)
    if width is None or text_width(one) <= width:
        return [one]
    return [f"{arm}:\n" + tab(*_grid(cmp, [arm], False), tablefmt) for arm in arms]


def _cache_lines(cmp):
    lines = [f"compile cache found in the load events: a: {cache_found(cmp.a)}; b: {cache_found(cmp.b)}"]
    for row in cmp.rows:
        for arm, c in row.arms.items():
            if c.not_comparable:
                lines.append(f"{arm} {row.label} {row.model or ''}".rstrip() + f": {c.reason}")
    if any(c.cache_state == "unknown" for row in cmp.rows for c in row.arms.values()):
        lines.append(f"{UNKNOWN_MARK}: the compile-cache state of some loads behind this ratio is unknown, so it may "
                     "set a compiled load against a cached one")
    return lines


def _differs(cmp, tablefmt, width):
    diff = [[k, json.dumps(v["a"], sort_keys=True), json.dumps(v["b"], sort_keys=True)]
            for k, v in cmp.manifest_diff.items()]
    if not diff:
        return bullets(["the two sides agree on: " + ", ".join(FACT_KEYS) + " (cache: the --cache option they ran with)"],
                       width)
    key = max(len(k) for k, _, _ in diff + [["differs", 0, 0]])
    side = max(12, (width - key - 6) // 2) if width else None       # server arguments run long
    return tabulate(diff, ["differs", "a", "b"], tablefmt=tablefmt, disable_numparse=True,
                    maxcolwidths=[None, side, side] if side else None)


def compare_text(cmp, fmt="terminal", width=WIDTH):
    """The terminal view fits `width` columns (the grid split per arm, notes wrapped); other formats keep
    one grid and unwrapped notes."""
    if fmt == "json":
        return dumps(cmp)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    tablefmt = TABLEFMT[fmt]
    wrap = width if fmt == "terminal" else None
    ranged = any(c.overlap is not None for row in cmp.rows for c in row.arms.values())
    head = bullets([f"Table {cmp.number}: {cmp.title} - compare, ratio {cmp.ratio}",
                    _side_line("a", cmp.a), _side_line("b", cmp.b)], wrap)
    parts = [head, *grids(cmp, tablefmt, wrap), bullets(_cache_lines(cmp), wrap), _differs(cmp, tablefmt, wrap)]
    if ranged:
        parts.append(bullets(["apart: a's and b's min..max ranges do not overlap; a ratio without it may be noise"],
                             wrap))
    return "\n\n".join(parts) + "\n"
