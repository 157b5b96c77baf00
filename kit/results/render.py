"""Text of tables (kit.results.tables.Table) and compare dicts. Deterministic: the same table gives the same bytes.

    text(tables, fmt="terminal", width=terminal_width())
                                   the terminal view: each table under its heading, fitting `width` columns
                                   (medians, ratio, and as far as they fit: the primary published source's
                                   ratio and medians, the spread; notes wrapped); wide=True: every column
                                   (min..max, n, spread, every published source), nothing wrapped
    text(tables, fmt="json")       one JSON document for any number of tables
    markdown(table)                tables/table<N>.md: the wide view as a GitHub table, with its heading
    json_file(table)               tables/table<N>.json: table.to_json()
    wrap(line, width)              a line of text wrapped to width (at spaces and after a list's commas)
"""
import re
import shutil
import textwrap

from tabulate import tabulate

from kit.results.records import dumps

WIDTH = 80       # the terminal view's default width (an 80x24 terminal)
FORMATS = ("terminal", "github", "plain", "json")
TABLEFMT = {"terminal": "simple", "github": "github", "plain": "plain"}     # tabulate's name for each text format
SHORT = {"gpu_freed_by_sleep": "GPU MiB freed by sleep", "gpu_taken_by_wake": "GPU MiB taken back by wake",
         "rss_first_sleep": "RSS MiB added by 1st sleep", "rss_peak": "peak RSS MiB", "wake_gbps": "wake GB/s",
         "h2d_gbps": "host->GPU GB/s", "wake_vs_h2d": "wake / host->GPU"}
STATE_MARK = {"ok": "", "suspect": " SUSPECT", "failed": " FAILED", "not run": " (not run)",
              "unfinished": " (unfinished)"}
STATE_CELL = {"failed": "FAILED", "not run": "not run", "unfinished": "pending"}
NOT_COMPARABLE = "not comparable"
UNKNOWN_MARK = "?"


def fmt_value(x, unit):
    if x is None:
        return "n/a"
    if unit == "s":
        return f"{x:.3f}"
    if unit in ("GB/s", "ratio"):
        return f"{x:.2f}"
    return f"{x:.1f}".removesuffix(".0")   # MiB, tokens: integers stay integers


def _range(cell, unit):
    return f"{fmt_value(cell.min, unit)}..{fmt_value(cell.max, unit)}" if cell else ""


def models_line(facts):
    parts = [f"{k} = {v.name}" + (f" (twin: {v.twin})" if v.twin else "") for k, v in facts.models.items()]
    return "models: " + (", ".join(parts) or "n/a")


def stand_in_lines(facts):
    """The first header line of a run whose server was not vLLM (the manifest's "stand_in"): no result."""
    return [f"{facts.stand_in}: not a result"] if facts.stand_in else []


def header_lines(facts):
    na = lambda value: value or "n/a"
    return stand_in_lines(facts) + [f"run {facts.run_id}" + ("" if facts.complete else " (incomplete)")
            + f" | GPU: {na(facts.gpu)} | vLLM {na(facts.vllm)} | torch {na(facts.torch)} | CUDA {na(facts.cuda)}"
            + f" | driver {na(facts.driver)}",
            models_line(facts),
            f"protocol: {na(facts.protocol)} | repeats: {na(facts.repeat)} | --cache {na(facts.cache)}"
            + f" | runtime: {na(facts.runtime)}" + (f" | jobs at once: {facts.at_once}" if facts.at_once > 1 else "")]


def state_line(s):
    """One arm's state (an ArmState) as a line: its role, unit, how it ran, its sleep checks and loads."""
    head = f"{s.role} arm {s.unit} ({s.title}): "
    if s.state in ("failed", "unfinished"):
        return head + s.state.upper() + " - " + "; ".join(s.errors)
    if s.state == "not run":
        return head + "not run (not part of this run)"
    if not (s.checks_passed or s.failed_checks or s.skipped_checks):
        return head + f"ok - {s.repeats} repeat(s) (no sleeps, so no sleep checks)" + loads_said(s.loads)
    checks = f"{s.checks_passed} checks passed, {len(s.failed_checks)} failed"
    if s.skipped_checks:
        checks += ", " + ", ".join(f"{v.count} {k} skipped ({v.reason.removeprefix('skipped: ')})"
                                   for k, v in s.skipped_checks.items())
    return (head + ("SUSPECT - " if s.state == "suspect" else "ok - ") + f"{s.repeats} repeat(s), {checks}"
            + loads_said(s.loads))


def loads_said(counts):
    """'; loads compiled 2 of 2' - what the events say of an arm's loads and the compile cache."""
    if not counts or not counts.n:
        return ""
    if counts.unknown == counts.n:
        return f"; {counts.n} loads, compile cache unknown"
    return f"; loads compiled {counts.compiled} of {counts.n}" + (f" ({counts.unknown} unknown)" if counts.unknown else "")


def check_lines(table):
    return [f"SUSPECT {s.unit} r{c.repeat} seq {c.seq}: {c.kind} {c.model or '-'} round {c.round}"
            f" - check {c.check} failed: {c.detail}" for s in table.arms for c in s.failed_checks]


def _median(cell, state, unit):
    if state in STATE_CELL:
        return STATE_CELL[state]
    return fmt_value(cell.median, unit) if cell else "-"


def ratio_cell(x, row):
    """A ratio as text: 'not comparable' where the loads behind it were not in one compile-cache state;
    marked '?' where the events do not say which state they were in."""
    if row.not_comparable:
        return NOT_COMPARABLE
    if x is None:
        return "-"
    return fmt_value(x, "ratio") + (UNKNOWN_MARK if row.cache_state == "unknown" else "")


def _spread(row, states):
    cells = [row.arms[s.arm] for s in states]
    cvs = [f"{c.cv * 100:.0f}%" if c and c.cv is not None else "-" for c in cells]
    ranges = {True: "overlap", False: "apart", None: ""}[row.overlap]
    return " / ".join(cvs) + (f" {ranges}" if ranges else "")


def _has_spread(table):
    """The spread column is for runs of two repeats or more (the issue a repeat settles: is it noise?)."""
    return (table.run.repeat or 1) >= 2


def ratio_name(table):
    """'nosleep/l1 ×': the control arm's median over the test arm's, the quotient the column holds."""
    return table.ratio + " ×"


def narrow_grid(table, pub_medians=True, spread=True, pub_ratio=True):
    """Medians and their ratio per row; the primary published source's medians and ratio, and the spread,
    as far as asked (the terminal view drops them, in reverse order, until the grid fits)."""
    states = table.arms
    headers = ["metric", "model"] + [s.arm + STATE_MARK[s.state] for s in states] + [ratio_name(table)]
    ref = table.published[0] if table.published and pub_ratio else None
    if ref:
        headers += [f"{ref.gpu} {s.arm}" for s in states] if pub_medians else []
        headers += [f"{ref.gpu} ×"]
    spread = spread and _has_spread(table)
    headers += ["spread"] if spread else []
    grid = []
    for row in table.rows:
        label = "- " + row.metric[5:] if row.metric.startswith("part:") else row.label
        line = [label, row.model or "-"] + [_median(row.arms[s.arm], s.state, row.unit) for s in states]
        line.append(ratio_cell(row.ratio, row))
        if ref:
            pub = row.published[0]
            line += [_median(pub.arms[s.arm], "ok", row.unit) for s in states] if pub_medians else []
            line += [_ratio(pub.ratio)]
        line += [_spread(row, states)] if spread else []
        grid.append(line)
    return headers, grid


NARROWER = ({}, {"pub_medians": False}, {"pub_medians": False, "spread": False},
            {"pub_medians": False, "spread": False, "pub_ratio": False})


def fitting_grid(table, width, tablefmt):
    """The fullest narrow grid (NARROWER, in order) whose text fits `width` columns, else the leanest."""
    for drop in NARROWER:
        text = tab(*narrow_grid(table, **drop), tablefmt)
        if text_width(text) <= width:
            break
    return text


def text_width(text):
    return max((len(line) for line in text.splitlines()), default=0)


def _ratio(x):
    return fmt_value(x, "ratio") if x is not None else "-"


def wide_grid(table):
    states = table.arms
    suspect = " (SUSPECT)" if any(s.state == "suspect" for s in states) else ""
    headers = ["metric", "model"] + [h for s in states for h in (f"{s.arm}{STATE_MARK[s.state]} median", "min..max", "n")]
    headers += [ratio_name(table) + suspect, "cv / ranges"]
    for i, r in enumerate(table.published, 1):
        headers += [f"pub[{i}] {s.arm} ({r.label})" for s in states] + [f"pub[{i}] {ratio_name(table)}"]
    grid = []
    for row in table.rows:
        line = [row.label, row.model or "-"]
        for s in states:
            cell = row.arms[s.arm]
            line += [_median(cell, s.state, row.unit), _range(cell, row.unit) if s.state not in STATE_CELL
                     else "", str(cell.n) if cell and s.state not in STATE_CELL else "0"]
        line += [ratio_cell(row.ratio, row), _spread(row, states)]
        for p in row.published:
            line += [_median(p.arms[s.arm], "ok", row.unit) for s in states] + [_ratio(p.ratio)]
        grid.append(line)
    return headers, grid


def memory_grid(table, wide):
    states = table.arms
    headers = ["memory", "model"]
    headers += [h for s in states for h in ((s.arm + " median", "min..max", "n") if wide else (s.arm,))]
    grid = []
    for row in table.memory:
        line = [row.label if wide else SHORT.get(row.metric, row.label), row.model]
        for s in states:
            cell = row.arms[s.arm]
            line += [_median(cell, s.state, row.unit)]
            line += [_range(cell, row.unit), str(cell.n) if cell else "0"] if wide else []
        grid.append(line)
    return headers, grid


def tab(headers, grid, tablefmt):
    """A grid with its two label columns left and its numbers right, taken as text."""
    align = ["left", "left"] + ["right"] * (len(headers) - 2)
    return tabulate(grid, headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


def bullets(items, width=None):
    if not width:
        return "\n".join(f"- {x}" for x in items)
    return "\n".join(wrap(x, width, first="- ") for x in items)


class _ListWrapper(textwrap.TextWrapper):
    # TextWrapper splits at wordsep_re while break_on_hyphens is on (its default): here at spaces and after
    # a list's commas, never at a hyphen
    wordsep_re = re.compile(r"(\s+|(?<=,)(?=\S))")


def wrap(line, width, first="", rest="  "):
    """line wrapped to lines of at most width characters, the first after `first`, the others after `rest`:
    broken at spaces and after the commas of a list (--models a,b,c), never inside a word, a path or a name
    (one longer than width stays whole). A line that fits is kept as it is."""
    if len(first) + len(line) <= width:
        return first + line
    return _ListWrapper(width, initial_indent=first, subsequent_indent=rest, break_long_words=False).fill(line)


def cache_lines(table):
    """Why a ratio is missing ('not comparable') or marked '?' (the compile-cache state is not known)."""
    lines = [f"{row.label} {row.model or ''}".rstrip() + f": {row.reason}" for row in table.rows if row.not_comparable]
    unknown = {s.arm: s.loads for s in table.arms if s.loads and s.loads.unknown}
    if any(row.cache_state == "unknown" for row in table.rows):
        arms = ", ".join(f"{arm} {c.unknown} of {c.n}" for arm, c in unknown.items())
        lines.append(f"{UNKNOWN_MARK}: compile cache state unknown ({arms} loads): the events do not say whether a load "
                     "compiled the model or read it from the cache, so this ratio may set one against the other")
    return lines


def table_text(table, fmt="terminal", wide=False, width=WIDTH):
    """One table: heading, header facts, arm states, the grid (narrowed to `width` columns in the terminal
    view), why ratios are missing, memory, failed checks, notes."""
    tablefmt = TABLEFMT[fmt]
    narrow = fmt == "terminal" and not wide
    wrap = width if narrow else None
    grid = fitting_grid(table, width, tablefmt) if narrow else tab(*(
        wide_grid if wide or fmt == "github" else narrow_grid)(table), tablefmt)
    parts = [f"Table {table.number}: {table.title}",
             bullets(header_lines(table.run) + [state_line(s) for s in table.arms], wrap), grid]
    if cache_lines(table):
        parts.append(bullets(cache_lines(table), wrap))
    if table.memory:
        parts.append(tab(*memory_grid(table, wide or fmt == "github"), tablefmt))
    checks = check_lines(table)
    if checks:
        parts.append(bullets(checks, wrap))
    parts.append(bullets(table.notes, wrap))
    return "\n\n".join(parts) + "\n"


def text(tables, fmt="terminal", wide=False, width=WIDTH):
    if fmt == "json":
        return dumps({"schema": tables[0].schema if tables else 1, "tables": tables})
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return "\n".join(table_text(t, fmt, wide, width) for t in tables)


def terminal_width():
    """The terminal's columns (COLUMNS, else the terminal's size; 80 when output is not a terminal)."""
    return shutil.get_terminal_size((WIDTH, 24)).columns


def markdown(table):
    """tables/table<N>.md: the wide view (every published source) as GitHub Markdown."""
    body = table_text(table, "github", wide=True).split("\n\n", 1)[1]
    return f"# Table {table.number}: {table.title}\n\n{body}"


def json_file(table):
    return dumps(table)
