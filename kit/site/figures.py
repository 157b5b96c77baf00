"""A run's figures for the site: kit.plot's specs and figures, saved as SVG under the site folder.

Drawing is the slow part of a build (about a fifth of a second of CPU per figure, most of it matplotlib's
axes, ticks and text), so:
- each file is named for what it shows: <stem>-<digest of the spec, the code that draws it (kit.plot.PIXEL_SOURCES)
  and matplotlib's version>.svg, and a rebuild into the same folder copies the files whose name it already has
  instead of drawing them;
- a run folder's own figures/<stem>.svg, drawn by `kit plot`, is copied when figures/index.json gives it the
  digest this build would draw (kit.plot.Plot.digest, with the same matplotlib): the committed reference runs
  carry theirs, so a site of them draws nothing (drawing is deterministic: the bytes are the same);
- the rest are drawn in worker processes (kit.site.build runs them).
A spec with more than MAX_MARKS events is not drawn (a figure of it would take minutes and show nothing);
the page says so.
"""
import hashlib
import shutil
from dataclasses import dataclass

from kit import layout, plot
from kit.site.views import safe_name

MAX_MARKS = 2000


@dataclass
class Figure:
    plot: plot.Plot      # what kit plot draws: stem, spec (and its kind)
    alt: str
    skipped: str | None = None      # why it is not drawn
    name: str = ""                  # file name in the run's figures/ folder

    def __post_init__(self):
        digest = hashlib.sha256(f"{self.plot.digest} matplotlib {plot.matplotlib_version()}".encode())
        self.name = f"{safe_name(self.plot.stem)}-{digest.hexdigest()[:12]}.svg"

    @property
    def stem(self):
        return self.plot.stem

    @property
    def kind(self):
        return self.plot.kind


def _marks(p):
    if p.kind == "timeline":
        return sum(len(r["segments"]) for r in p.spec.rows)
    if p.kind == "memory":
        return len(p.spec.points)
    return 0


def _who(spec_arms):
    return " and ".join(spec_arms) or "no arms"


def alt_text(p, tables):
    """What a figure shows, in words (the img's alt)."""
    if p.kind in ("bars", "timeline"):
        table = tables[p.spec.table]
        arms = _who([f"{s.unit} ({s.state})" for s in table.arms])
        pubs = ", ".join(r.gpu for r in table.published) or "none"
        if p.kind == "bars":
            return (f"Table {p.spec.table} bar chart: median switch, prompt and total seconds with min..max "
                    f"whiskers of {arms}, measured on {table.run.gpu or 'n/a'}, beside the published numbers "
                    f"({pubs})")
        return (f"Table {p.spec.table} timeline: every event of one repeat of {arms} with the published series "
                f"({pubs}) beside, and each switch zoomed")
    if p.kind == "memory":
        return (f"Memory of {p.spec.unit} ({p.spec.state}), repeat r{p.spec.repeat}: GPU MiB used and each "
                "server's host RSS before and after every event")
    if p.kind == "loads":
        return ("Load breakdown: one stacked bar per unit, model and compile-cache state (weights, compile, CUDA "
                "graphs, rest of engine init, start-up), the measured load's median with its min..max")
    return (f"Sleep-level guide: the switch (sleep and wake) of each model size at level "
            f"{' and '.join(str(x) for x in p.spec.levels)} against the bandwidth bound, and the host RAM held "
            "while asleep")


def run_figures(run, tables):
    """The figures `kit plot` draws for these tables of a run (kit.plot.plots), each with its alt text."""
    out = [Figure(p, alt_text(p, tables)) for p in plot.plots(run, list(tables), tables)]
    for f in out:
        marks = _marks(f.plot)
        if marks > MAX_MARKS:
            f.skipped = f"not drawn: {marks:,} events, more than the {MAX_MARKS:,} a figure can show"
    return out


def draw(p, path):
    """One figure as SVG (kit.plot's settings: no date, no version, stable ids)."""
    p.save(path.with_suffix(""), formats=("svg",))
    return path


def stored(run_dir, figures):
    """{name: path} of the SVGs in a run folder's figures/ that `kit plot` drew from what these figures show
    (their digest in its index.json is theirs, with this matplotlib)."""
    folder = layout.RunDir(run_dir).figures_dir
    index = plot.read_index(folder)
    paths = {f.name: folder / f"{f.stem}.svg" for f in figures if index.get(f.stem) == f.plot.digest}
    return {name: path for name, path in paths.items() if not path.is_symlink()}     # a file of the run, not elsewhere


def reuse(jobs, *sources):
    """jobs: [(Figure, destination)]. Copies each figure from the first source that has it (source(Figure,
    destination) -> a path or None); returns the jobs left to draw and {source index: figures copied}."""
    todo, copied = [], dict.fromkeys(range(len(sources)), 0)
    for fig, dest in jobs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for i, source in enumerate(sources):
            path = source(fig, dest)
            if path is not None and path.is_file():
                shutil.copyfile(path, dest)
                copied[i] += 1
                break
        else:
            todo.append((fig, dest))
    return todo, copied
