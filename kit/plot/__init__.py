"""Figures of a run, one set per table: bars (switch, prompt, total), a timeline, and a memory trace per unit;
and one for the whole run: the load breakdown (stacked bars, kit.results.loads); and for a sweep run
(kit sweep): its guide (switch by model size and level against the bandwidth bound, host RAM held).

Each figure is built in two steps: kit.plot.specs turns a run (kit.results) into a spec, plain data (testable
without pixels), and a figure function (kit.plot.charts: bars, loads, guide; kit.plot.traces: timeline,
memory) turns the spec into a matplotlib Figure, saved by kit.plot.style as figures/<name>.png and .svg.
plots(run, numbers) is the one list of a run's figures (Plot: name, spec) that `kit plot`, `kit bundle` and
`kit site` draw. This module and kit.plot.specs import no matplotlib (most of a second of CPU): the drawing
modules are imported when a figure is drawn (builders).
"""
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path

from kit import layout, results
from kit.plot import specs
from kit.results import guide as guides
from kit.workload import scenarios

FORMATS = ("png", "svg")
INDEX = "index.json"
PIXEL_SOURCES = ("specs.py", "style.py", "charts.py", "traces.py")     # the modules that decide a figure's pixels


@dataclass(frozen=True)
class Plot:
    """One figure of a run: its file name (no extension) and its spec (BarsSpec, TimelineSpec, ...)."""
    stem: str                   # table1-bars, table1-timeline, memory-<unit>, loads, guide
    spec: specs.BarsSpec | specs.TimelineSpec | specs.MemorySpec | specs.LoadsSpec | specs.GuideSpec

    @property
    def kind(self):
        """bars, timeline, memory, loads or guide: a key of builders()."""
        return self.spec.kind

    def figure(self):
        return builders()[self.kind](self.spec)

    def save(self, stem, formats=FORMATS):
        """Draw it as <stem>.<format> for each format (kit.plot.style.save); returns the paths."""
        from kit.plot import style
        return style.save(self.figure(), stem, formats)

    @property
    def digest(self):
        """sha256 of what decides the picture, matplotlib aside: kind, spec and code_digest()."""
        return hashlib.sha256(json.dumps([self.kind, asdict(self.spec), code_digest()], sort_keys=True).encode()
                              ).hexdigest()


def builders():
    """{kind: function(spec) -> matplotlib Figure}. Imports the drawing modules and with them matplotlib: only
    what draws calls it (or a pool before it forks its workers)."""
    from kit.plot import charts, traces
    return {"bars": charts.bars_figure, "timeline": traces.timeline_figure, "memory": traces.memory_figure,
            "loads": charts.loads_figure, "guide": charts.guide_figure}


@cache
def code_digest():
    """sha256 of PIXEL_SOURCES (read, not imported): a change of a spec or of the drawing code makes every
    stored figure stale."""
    digest = hashlib.sha256()
    for name in PIXEL_SOURCES:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


@cache
def matplotlib_version():
    """The installed matplotlib's version, without importing it."""
    return metadata.version("matplotlib")


def _numbers(numbers):
    return sorted(set(int(x) for x in numbers))


def _units(run, numbers):
    return list(dict.fromkeys(run.unit_for(n, a) for n in _numbers(numbers) for a in scenarios.TABLES[n].arms))


def plots(run, numbers, built=None):
    """Every figure of these tables of a run, in order: table<N>-bars and table<N>-timeline per table,
    memory-<unit> per unit, loads (the run's load breakdown), guide (a sweep's). built: {number: build_table}
    already made."""
    out = []
    for n in _numbers(numbers):
        table = (built or {}).get(n) or results.build_table(run, n)
        out += [Plot(f"table{n}-bars", specs.bars_spec(run, n, table)),
                Plot(f"table{n}-timeline", specs.timeline_spec(run, n, table))]
    memory = {unit: specs.memory_spec(run, unit) for unit in dict.fromkeys([*run.units, *_units(run, numbers)])}
    limits = specs.memory_limits([memory[unit] for unit in run.units])    # the same whichever tables
    out += [Plot(f"memory-{unit}", replace(memory[unit], limits=limits)) for unit in _units(run, numbers)]
    out.append(Plot("loads", specs.loads_spec(run)))
    if guides.is_sweep(run):
        out.append(Plot("guide", specs.guide_spec(run)))
    return out


def figure_stems(run, numbers):
    """The figures' names (no extension), in the order of plots."""
    return [p.stem for p in plots(run, numbers)]


def plot_run(run, numbers, out=None):
    """Write every figure of these tables under out (default <run>/figures/), PNG and SVG, and each one's digest
    in INDEX there, after its files (an interrupted plot leaves no entry for a half-replaced figure); return the
    paths."""
    folder = Path(out) if out else layout.RunDir(run.source).figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    todo = plots(run, numbers)
    index = {stem: digest for stem, digest in read_index(folder).items() if stem not in {p.stem for p in todo}}
    write_index(folder, index)
    paths = []
    for p in todo:
        paths += p.save(folder / p.stem)
        index[p.stem] = p.digest
        write_index(folder, index)
    return paths


def read_index(folder, any_matplotlib=False):
    """{stem: digest} of the figures in a folder, as plot_run recorded them; {} when there is no index or (unless
    any_matplotlib) it was written with another matplotlib version, whose files may differ."""
    try:
        doc = json.loads((Path(folder) / INDEX).read_text(encoding="utf-8"))
        if any_matplotlib or doc.get("matplotlib") == matplotlib_version():
            return {str(stem): str(digest) for stem, digest in doc["figures"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {}


def write_index(folder, index):
    doc = {"matplotlib": matplotlib_version(), "figures": dict(sorted(index.items()))}
    with layout.replacing(Path(folder) / INDEX) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def expected_figures(run, numbers):
    """File names plot_run writes for these tables of a run."""
    return [f"{stem}.{fmt}" for stem in figure_stems(run, numbers) for fmt in FORMATS]
