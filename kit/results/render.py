"""Text of table and compare dicts. Deterministic: the same dict gives the same bytes.

    text(tables, fmt="terminal")   the terminal view: each table under its heading, at most WIDTH columns
                                   (medians, ratio, the primary published medians); wide=True adds
                                   min..max, n, spread and every published source
    text(tables, fmt="json")       one JSON document for any number of tables
    markdown(table)                tables/table<N>.md: the wide view as a GitHub table, with its heading
"""
import json
import textwrap

from tabulate import tabulate

WIDTH = 120
FORMATS = ("terminal", "github", "plain", "json")
TABLEFMT = {"terminal": "simple", "github": "github", "plain": "plain"}     # tabulate's name for each text format
SHORT = {"gpu_freed_by_sleep": "GPU MiB freed by sleep", "gpu_taken_by_wake": "GPU MiB taken back by wake",
         "rss_first_sleep": "RSS MiB added by 1st sleep", "rss_peak": "peak RSS MiB", "wake_gbps": "wake GB/s",
         "h2d_gbps": "host->GPU GB/s", "wake_vs_h2d": "wake / host->GPU"}
STATE_MARK = {"ok": "", "suspect": " SUSPECT", "failed": " FAILED", "not run": " (not run)",
              "unfinished": " (unfinished)"}
STATE_CELL = {"failed": "FAILED", "not run": "not run", "unfinished": "pending"}


def fmt_value(x, unit):
    if x is None:
        return "n/a"
    if unit == "s":
        return f"{x:.3f}"
    if unit in ("GB/s", "ratio"):
        return f"{x:.2f}"
    return f"{x:.1f}".removesuffix(".0")   # MiB, tokens: integers stay integers


def _range(cell, unit):
    return f"{fmt_value(cell['min'], unit)}..{fmt_value(cell['max'], unit)}" if cell else ""


def models_line(facts):
    parts = [f"{k} = {v['name']}" + (f" (twin: {v['twin']})" if v.get("twin") else "")
             for k, v in facts["models"].items()]
    return "models: " + (", ".join(parts) or "n/a")


def stand_in_lines(facts):
    """The first header line of a run whose server was not vLLM (the manifest's "stand_in"): no result."""
    return [f"{facts['stand_in']}: not a result"] if facts.get("stand_in") else []


def header_lines(facts):
    na = lambda k: facts.get(k) or "n/a"
    return stand_in_lines(facts) + [f"run {facts['run_id']}" + ("" if facts["complete"] else " (incomplete)")
            + f" | GPU: {na('gpu')} | vLLM {na('vllm')} | torch {na('torch')} | CUDA {na('cuda')}"
            + f" | driver {na('driver')}",
            models_line(facts),
            f"protocol: {na('protocol')} | repeats: {na('repeat')} | compile cache: {na('cache')}"
            + f" | runtime: {na('runtime')}" + (f" | jobs at once: {facts['at_once']}" if facts.get("at_once", 0) > 1
                                                else "")]


def state_line(s):
    head = f"{s['role']} arm {s['unit']} ({s['title']}): "
    if s["state"] in ("failed", "unfinished"):
        return head + s["state"].upper() + " - " + "; ".join(s["errors"])
    if s["state"] == "not run":
        return head + "not run (not part of this run)"
    if not (s["checks_passed"] or s["failed_checks"] or s["skipped_checks"]):
        return head + f"ok - {s['repeats']} repeat(s) (no sleeps, so no sleep checks)"
    checks = f"{s['checks_passed']} checks passed, {len(s['failed_checks'])} failed"
    if s["skipped_checks"]:
        checks += ", " + ", ".join(f"{v['count']} {k} skipped ({v['reason'].removeprefix('skipped: ')})"
                                   for k, v in s["skipped_checks"].items())
    return head + ("SUSPECT - " if s["state"] == "suspect" else "ok - ") + f"{s['repeats']} repeat(s), {checks}"


def check_lines(table):
    return [f"SUSPECT {s['unit']} r{c['repeat']} seq {c['seq']}: {c['kind']} {c['model'] or '-'} round {c['round']}"
            f" - check {c['check']} failed: {c['detail']}" for s in table["arms"] for c in s["failed_checks"]]


def _median(cell, state, unit):
    if state in STATE_CELL:
        return STATE_CELL[state]
    return fmt_value(cell["median"], unit) if cell else "-"


def _ratio(x):
    return fmt_value(x, "ratio") if x is not None else "-"


def _spread(row, states):
    cells = [row["arms"][s["arm"]] for s in states]
    cvs = [f"{c['cv'] * 100:.0f}%" if c and "cv" in c else "-" for c in cells]
    ranges = {True: "overlap", False: "apart", None: ""}[row.get("overlap")]
    return " / ".join(cvs) + (f" {ranges}" if ranges else "")


def _has_spread(table):
    """The spread column is for runs of two repeats or more (the issue a repeat settles: is it noise?)."""
    return (table["run"].get("repeat") or 1) >= 2


def narrow_grid(table):
    states = table["arms"]
    headers = ["metric", "m"] + [s["arm"] + STATE_MARK[s["state"]] for s in states] + ["ratio"]
    ref = table["published"][0] if table["published"] else None
    if ref:
        headers += [f"{ref['gpu']} {s['arm']}" for s in states] + ["pub ratio"]
    spread = _has_spread(table)
    headers += ["spread"] if spread else []
    grid = []
    for row in table["rows"]:
        label = "- " + row["metric"][5:] if row["metric"].startswith("part:") else row["label"]
        line = [label, row["model"] or "-"] + [_median(row["arms"][s["arm"]], s["state"], row["unit"]) for s in states]
        line.append(_ratio(row["ratio"]))
        if ref:
            pub = row["published"][0]
            line += [_median(pub["arms"][s["arm"]], "ok", row["unit"]) for s in states] + [_ratio(pub["ratio"])]
        line += [_spread(row, states)] if spread else []
        grid.append(line)
    return headers, grid


def wide_grid(table):
    states = table["arms"]
    suspect = " (SUSPECT)" if any(s["state"] == "suspect" for s in states) else ""
    headers = ["metric", "model"] + [h for s in states for h in (f"{s['arm']}{STATE_MARK[s['state']]} median",
                                                                  "min..max", "n")]
    headers += [table["ratio"] + suspect, "cv / ranges"]
    for i, r in enumerate(table["published"], 1):
        headers += [f"pub[{i}] {s['arm']} ({r['label']})" for s in states] + [f"pub[{i}] {table['ratio']}"]
    grid = []
    for row in table["rows"]:
        line = [row["label"], row["model"] or "-"]
        for s in states:
            cell = row["arms"][s["arm"]]
            line += [_median(cell, s["state"], row["unit"]), _range(cell, row["unit"]) if s["state"] not in STATE_CELL
                     else "", str(cell["n"]) if cell and s["state"] not in STATE_CELL else "0"]
        line += [_ratio(row["ratio"]), _spread(row, states)]
        for p in row["published"]:
            line += [_median(p["arms"][s["arm"]], "ok", row["unit"]) for s in states] + [_ratio(p["ratio"])]
        grid.append(line)
    return headers, grid


def memory_grid(table, wide):
    states = table["arms"]
    headers = ["memory", "m" if not wide else "model"]
    headers += [h for s in states for h in ((s["arm"] + " median", "min..max", "n") if wide else (s["arm"],))]
    grid = []
    for row in table["memory"]:
        line = [row["label"] if wide else SHORT.get(row["metric"], row["label"]), row["model"]]
        for s in states:
            cell = row["arms"][s["arm"]]
            line += [_median(cell, s["state"], row["unit"])]
            line += [_range(cell, row["unit"]), str(cell["n"]) if cell else "0"] if wide else []
        grid.append(line)
    return headers, grid


def tab(headers, grid, tablefmt):
    """A grid with its two label columns left and its numbers right, taken as text."""
    align = ["left", "left"] + ["right"] * (len(headers) - 2)
    return tabulate(grid, headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


def _bullets(items, width=None):
    if not width:
        return "\n".join(f"- {x}" for x in items)
    return "\n".join(textwrap.fill(x, width, initial_indent="- ", subsequent_indent="  ") for x in items)


def table_text(table, fmt="terminal", wide=False):
    """One table: heading, header facts, arm states, the grid, memory, failed checks, notes."""
    tablefmt = TABLEFMT[fmt]
    width = WIDTH if fmt == "terminal" and not wide else None
    grid = wide_grid if wide or fmt == "github" else narrow_grid
    parts = [f"Table {table['table']}: {table['title']}",
             _bullets(header_lines(table["run"]) + [state_line(s) for s in table["arms"]], width),
             tab(*grid(table), tablefmt)]
    if table["memory"]:
        parts.append(tab(*memory_grid(table, wide or fmt == "github"), tablefmt))
    checks = check_lines(table)
    if checks:
        parts.append(_bullets(checks, width))
    parts.append(_bullets(table["notes"], width))
    return "\n\n".join(parts) + "\n"


def text(tables, fmt="terminal", wide=False):
    if fmt == "json":
        return json.dumps({"schema": tables[0]["schema"] if tables else 1, "tables": tables}, indent=2, sort_keys=True) + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return "\n".join(table_text(t, fmt, wide) for t in tables)


def markdown(table):
    """tables/table<N>.md: the wide view (every published source) as GitHub Markdown."""
    body = table_text(table, "github", wide=True).split("\n\n", 1)[1]
    return f"# Table {table['table']}: {table['title']}\n\n{body}"


def json_file(table):
    return json.dumps(table, indent=2, sort_keys=True) + "\n"
