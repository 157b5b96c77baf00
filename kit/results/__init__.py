"""The read side: runs -> numbers -> text. Layered bottom-up, each module importing only those below:

    archive   deterministic tar.gz writer, safe streaming reader (knows tars, not runs)
    load      a run directory or bundle -> Run (manifest, options, units, repeats, events)
    records   the base of the typed results: to_json() writes the JSON files, dumps() their text
    metrics   numbers from events (selection, statistics as Cells, compile-cache counts, memory)
    published the study's published numbers
    tables    build_table(run, number) -> a Table (arm states, rows of Cells, memory rows, sources, notes)
    loads     the load breakdown (build_loads, its text; backfill gives old runs' loads theirs)
    render    Tables -> terminal / Markdown / JSON text
    compare   two Tables (or one and the published numbers) side by side: a Comparison
    guide     a sweep run (kit sweep) -> its guide: per model size and level, and the crossover

kit.plot and kit.bundle sit on top of this package (kit.bundle.load_any reads a run id, folder or bundle).
"""
from kit import layout
from kit.results import guide, loads, render, summary
from kit.results.load import Repeat, Run, load_run
from kit.results.render import json_file, markdown
from kit.results.tables import build_table

__all__ = ["Repeat", "Run", "build_table", "load_run", "table_texts", "view_text", "write_tables"]


def table_texts(run, numbers=None):
    """{file name: text} of a run's tables (default: run.tables): table<N>.md (wide, GitHub) and .json,
    and the run's load breakdown, loads.md and loads.json."""
    texts = {}
    for n in numbers or run.tables:
        table = build_table(run, n)
        texts[f"table{n}.md"], texts[f"table{n}.json"] = markdown(table), json_file(table)
    breakdown = loads.build_loads(run)
    texts["loads.md"], texts["loads.json"] = loads.markdown(breakdown), loads.json_file(breakdown)
    return texts


def write_tables(run, numbers=None):
    """Write <run>/tables/table<N>.md and .json (a sweep run: guide.md and .json); returns the paths written."""
    out = layout.RunDir(run.source).tables_dir
    out.mkdir(exist_ok=True)
    paths = []
    texts = table_texts(run, numbers) | (guide.texts(run) if guide.is_sweep(run) else {})
    for name, text in texts.items():
        layout.write_text(out / name, text)     # a full disk leaves the old table, never half a new one
        paths.append(out / name)
    return paths


def view_text(run, numbers=(), fmt="terminal", wide=False, loads_only=False):
    """What `kit table` shows of a run: its tables (numbers; default run.tables) beside the published numbers, its
    load breakdown (not in JSON: loads_only gives it alone) and what each table says (terminal); a sweep run
    asked for no tables: its guide. At most the terminal's width unless wide."""
    if loads_only:
        return loads.loads_text(loads.build_loads(run), fmt, wide)
    width = render.terminal_width()
    if guide.is_sweep(run) and not numbers:
        return guide.text(guide.build_guide(run), fmt, None if wide else width)
    built = [build_table(run, n) for n in sorted(numbers) or run.tables]
    text = render.text(built, fmt, wide, width)
    if fmt != "json":
        text += "\n" + loads.loads_text(loads.build_loads(run), fmt, wide)
    if fmt == "terminal":
        text += "\n" + summary.text(built, None if wide else width)
    return text
