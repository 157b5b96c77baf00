"""The read side: runs -> numbers -> text. Layered bottom-up, each module importing only those below:

    archive   deterministic tar.gz writer, safe streaming reader (knows tars, not runs)
    load      a run directory or bundle -> Run (manifest, options, units, repeats, events)
    metrics   numbers from events (selection, statistics, memory)
    published the study's published numbers
    tables    build_table(run, number) -> a JSON-able dict
    render    table dicts -> terminal / Markdown / JSON text
    compare   two table dicts (or one and the published numbers) side by side

kit.plot and kit.bundle sit on top of this package.
"""
from kit import layout
from kit.results.load import Repeat, Run, load_any, load_run
from kit.results.render import json_file, markdown
from kit.results.tables import build_table

__all__ = ["Repeat", "Run", "build_table", "load_any", "load_run", "write_tables"]


def write_tables(run, numbers=None):
    """Write <run>/tables/table<N>.md (wide, GitHub) and .json; returns the paths written."""
    out = layout.RunDir(run.source).tables_dir
    out.mkdir(exist_ok=True)
    paths = []
    for n in numbers or run.tables:
        table = build_table(run, n)
        md, js = out / f"table{n}.md", out / f"table{n}.json"
        md.write_text(markdown(table), encoding="utf-8")
        js.write_text(json_file(table), encoding="utf-8")
        paths += [md, js]
    return paths
