"""A run's figures for the site: kit.plot's specs and figures, saved as SVG under the site folder.

Drawing is the slow part of a build (a second or more per figure), so:
- each file is named for what it shows: <stem>-<digest of the spec, kit/plot.py and matplotlib's version>.svg,
  and a rebuild into the same folder copies the files whose name it already has instead of drawing them;
- the rest are drawn in worker processes (kit.site.build runs them).
A spec with more than MAX_MARKS events is not drawn (a figure of it would take minutes and show nothing);
the page says so.
"""
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from kit import plot
from kit.site.views import safe_name

MAX_MARKS = 2000
FIGURES = {"bars": plot.bars_figure, "timeline": plot.timeline_figure, "memory": plot.memory_figure,
           "loads": plot.loads_figure}


@dataclass
class Figure:
    stem: str            # table1-bars, memory-l1, ...
    kind: str            # a key of FIGURES
    spec: dict
    alt: str
    limits: dict | None = None
    skipped: str | None = None      # why it is not drawn
    name: str = ""                  # file name in the run's figures/ folder

    def __post_init__(self):
        digest = hashlib.sha256(json.dumps([self.kind, self.spec, self.limits, _code_id()], sort_keys=True).encode())
        self.name = f"{safe_name(self.stem)}-{digest.hexdigest()[:12]}.svg"


def _code_id():
    """What else decides a figure's bytes: the drawing code and matplotlib."""
    global _CODE
    if _CODE is None:
        _CODE = hashlib.sha256(Path(plot.__file__).read_bytes()).hexdigest() + matplotlib.__version__
    return _CODE


_CODE = None


def _marks(kind, spec):
    if kind == "timeline":
        return sum(len(r["segments"]) for r in spec["rows"])
    if kind == "memory":
        return len(spec["points"])
    return 0


def _who(spec_arms):
    return " and ".join(spec_arms) or "no arms"


def run_figures(run, tables):
    """The figures `kit plot` draws for these tables of a run (same stems), each with its alt text."""
    out = []
    for n, table in tables.items():
        arms = [f"{s.unit} ({s.state})" for s in table.arms]
        pubs = ", ".join(r.gpu for r in table.published) or "none"
        bars = plot.bars_spec(run, n, table)
        out.append(Figure(f"table{n}-bars", "bars", bars, f"Table {n} bar chart: median switch, prompt and total "
                          f"seconds with min..max whiskers of {_who(arms)}, measured on {table.run['gpu'] or 'n/a'}, "
                          f"beside the published numbers ({pubs})"))
        timeline = plot.timeline_spec(run, n, table)
        out.append(Figure(f"table{n}-timeline", "timeline", timeline, f"Table {n} timeline: every event of one "
                          f"repeat of {_who(arms)} with the published series ({pubs}) beside, and each switch zoomed"))
    memory_stems = [s for s in plot.figure_stems(run, list(tables)) if s.startswith("memory-")]
    units = [s.removeprefix("memory-") for s in memory_stems]
    specs = {unit: plot.memory_spec(run, unit) for unit in dict.fromkeys([*run.units, *units])}
    limits = plot.memory_limits([specs[u] for u in run.units])
    for unit in units:
        spec = specs[unit]
        out.append(Figure(f"memory-{unit}", "memory", spec, f"Memory of {unit} ({spec['state']}), repeat "
                          f"r{spec['repeat']}: GPU MiB used and each server's host RSS before and after every event",
                          limits))
    loads = plot.loads_spec(run)
    out.append(Figure("loads", "loads", loads, "Load breakdown: one stacked bar per unit, model and compile-cache "
                      "state (weights, compile, CUDA graphs, rest of engine init, start-up), the measured load's "
                      "median with its min..max"))
    for f in out:
        marks = _marks(f.kind, f.spec)
        if marks > MAX_MARKS:
            f.skipped = f"not drawn: {marks:,} events, more than the {MAX_MARKS:,} a figure can show"
    return out


def draw(kind, spec, limits, path):
    """One figure as SVG (kit.plot's settings: no date, no version, stable ids)."""
    fig = plot.memory_figure(spec, limits) if kind == "memory" else FIGURES[kind](spec)
    with matplotlib.rc_context(plot.SVG_RC):
        fig.savefig(path, format="svg", metadata=plot.SVG_METADATA)
    plot.plt.close(fig)
    return path


def reuse(jobs, previous):
    """jobs: [(Figure, destination)]. Copies the files an earlier build has (previous(dest) -> its path or None);
    returns the jobs left to draw."""
    todo = []
    for fig, dest in jobs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        old = previous(dest)
        if old is not None and old.is_file():
            shutil.copyfile(old, dest)
        else:
            todo.append((fig, dest))
    return todo
