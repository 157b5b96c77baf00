"""Two loaded runs (or a run and the published numbers) side by side, one table at a time.

    cmp = compare(table_a, table_b, number)     tables from build_table, or published_table(number, gpu)
    print(compare_text(cmp))
"""
import json

from tabulate import tabulate

from kit.results import metrics, published
from kit.results.render import FORMATS, TABLEFMT, fmt_value, models_line, tab
from kit.results.tables import FACT_KEYS, NO_NUMBERS, SCHEMA, rows as table_rows
from kit.workload import scenarios


def published_table(number, gpu=None):
    """The published numbers of a table in the shape of build_table's dict (rows, run facts, states);
    None when the source has no reference for this table."""
    ref = published.pick(number, gpu)
    if ref is None:
        return None
    table_arms = list(scenarios.TABLES[number].arms)
    rows = table_rows(table_arms, {a: published.events(ref, a) for a in table_arms}, [])
    facts = {"run_id": f"published ({ref['label']}, figure {ref['figure']})", "gpu": ref["gpu"],
             "vllm": ref["vllm"], "models": {k: {"name": v, "twin": None} for k, v in sorted(ref["models"].items())},
             **published.FACTS}
    return {"table": number, "run": facts, "rows": rows,
            "arms": [{"arm": a, "unit": a, "state": "ok", "errors": []} for a in table_arms]}


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
    """Keys whose values differ between two sides' facts (keys the published side lacks are left out).
    short_models: compare model names without their organisation (the blog writes "Qwen3-0.6B")."""
    diff = {}
    for key in FACT_KEYS:
        if key not in fa or key not in fb:
            continue
        va, vb = fa[key], fb[key]
        if key == "models" and short_models:
            va, vb = ({k: _short(m["name"]) for k, m in v.items()} for v in (va, vb))
        diff.update(_differences(key, va, vb))
    return diff


def compare(ta, tb, number, against_published=False):
    table_arms = list(scenarios.TABLES[number].arms)
    index_a = {(r["metric"], r["model"]): r for r in ta["rows"]}
    index_b = {(r["metric"], r["model"]): r for r in tb["rows"]}
    keys = list(index_a) + [k for k in index_b if k not in index_a]
    rows = []
    for key in keys:
        ra, rb = index_a.get(key, {}), index_b.get(key, {})
        some = ra or rb
        arms = {}
        for arm in table_arms:
            ca, cb = ra.get("arms", {}).get(arm), rb.get("arms", {}).get(arm)
            arms[arm] = {"a": ca, "b": cb, "ratio": metrics.ratio(cb, ca), "overlap": metrics.overlap(ca, cb)}
        rows.append({"metric": key[0], "model": key[1], "label": some["label"], "unit": some["unit"], "arms": arms})
    side = lambda t: {"run": t["run"], "arms": {s["arm"]: {"state": s["state"], "errors": s["errors"]}
                                                for s in t["arms"]}}
    return {"schema": SCHEMA, "table": number, "title": scenarios.TABLES[number].title, "a": side(ta), "b": side(tb),
            "rows": rows, "manifest_diff": manifest_diff(ta["run"], tb["run"], short_models=against_published),
            "ratio": "b/a of the medians"}


def _side_line(name, side):
    f = side["run"]
    states = ", ".join(f"{arm} {s['state'].upper()}" + (f" ({'; '.join(s['errors'])})" if s["errors"] else "")
                       for arm, s in side["arms"].items())
    return (f"{name}: {f['run_id']} | GPU: {f.get('gpu') or 'n/a'} | vLLM {f.get('vllm') or 'n/a'} | "
            f"{models_line(f)} | arms: {states}")


def _cell(cell, state, unit):
    if state in NO_NUMBERS:
        return state.upper() if state == "failed" else state
    return fmt_value(cell["median"], unit) if cell else "-"


def _ratio(c):
    if c["ratio"] is None:
        return "-"
    return fmt_value(c["ratio"], "ratio") + (" apart" if c["overlap"] is False else "")


def compare_text(cmp, fmt="terminal"):
    if fmt == "json":
        return json.dumps(cmp, indent=2, sort_keys=True) + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    tablefmt = TABLEFMT[fmt]
    arms = list(scenarios.TABLES[cmp["table"]].arms)
    headers = ["metric", "model"] + [h for arm in arms for h in (f"{arm} a", f"{arm} b", "b/a")]
    grid = []
    for row in cmp["rows"]:
        line = [row["label"], row["model"] or "-"]
        for arm in arms:
            c = row["arms"][arm]
            line += [_cell(c["a"], cmp["a"]["arms"][arm]["state"], row["unit"]),
                     _cell(c["b"], cmp["b"]["arms"][arm]["state"], row["unit"]),
                     _ratio(c)]
        grid.append(line)
    diff = [[k, json.dumps(v["a"], sort_keys=True), json.dumps(v["b"], sort_keys=True)]
            for k, v in cmp["manifest_diff"].items()]
    ranged = any(c["overlap"] is not None for row in cmp["rows"] for c in row["arms"].values())
    head = "\n".join(f"- {x}" for x in [f"Table {cmp['table']}: {cmp['title']} - compare, ratio {cmp['ratio']}",
                                         _side_line("a", cmp["a"]), _side_line("b", cmp["b"])])
    wrap = [None, 52, 52] if fmt == "terminal" else None   # server arguments run long
    parts = [head, tab(headers, grid, tablefmt),
             tabulate(diff, ["differs", "a", "b"], tablefmt=tablefmt, disable_numparse=True, maxcolwidths=wrap)
             if diff else "- the two sides agree on: " + ", ".join(FACT_KEYS)]
    if ranged:
        parts.append("- apart: a's and b's min..max ranges do not overlap; a ratio without it may be noise")
    return "\n\n".join(parts) + "\n"
