"""kit site: runs and bundles -> a static website in one folder (no network, no script needed to read it).

    DIR/index.html                  the matrix: one row per run (a run that did not load says why)
    DIR/runs/<run>.html             a run: tables, figures, sleep checks, provenance, bundle
    DIR/runs/<run>/                 its figures (SVG), table JSON and bundle
    DIR/compare/<run>--published.html, DIR/compare/<a>--<b>.html
    DIR/data/events.csv, events.json   every event of every run, one row each
    DIR/assets/                     style sheet and the optional sorting script

The same inputs give the same bytes: no dates of the build, stable order, deterministic figures.
The site is written to a temporary folder beside DIR and moved into place at the end; an existing DIR is
replaced only when it is an earlier site (it holds MARKER).
"""
import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from kit import __version__, bundle, layout, plot, runs
from kit.errors import BadInput, KitError, NotFound
from kit.bundle import load_any
from kit.results import json_file, load_run, published
from kit.site import figures as figs
from kit.site import views

MARKER = ".sleepkit-site"
ASSETS = ("style.css", "sort.js")


def environment():
    return Environment(loader=PackageLoader("kit.site", "templates"), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


# ---------------------------------------------------------------- inputs

def _bundle_beside(run_dir):
    path = Path(run_dir).parent / f"{Path(run_dir).name}.tar.gz"
    return path if path.is_file() else None


def _entry(source, load, bundle_path):
    entry = views.Entry(Path(source), bundle=bundle_path)
    try:
        entry.run = load()
        entry.tables = views.load_tables(entry.run)
        entry.guide = views.guide_view(entry.run)       # here: a sweep part of an unexpected shape is this run's error
    except KitError as e:
        entry.run, entry.error = None, e.line()
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as e:     # a record of an unexpected shape
        entry.run, entry.error = None, f"{type(e).__name__}: {e}"
    return entry


def collect(sources, results_dir):
    """Entries for the given runs/bundles, or for every run (and bundle without its folder) in results_dir."""
    if sources:
        out = []
        for s in sources:
            path = Path(s) if Path(s).exists() else Path(results_dir) / s
            if not path.exists():
                raise NotFound(f"{s!r} is neither a run id in {results_dir}, a run folder nor a bundle",
                               "list the runs with `kit ls`")
            is_bundle = path.is_file()
            out.append(_entry(path, lambda s=s: load_any(s, results_dir), path if is_bundle else _bundle_beside(path)))
        return out
    root = layout.results_root(results_dir)
    out = [_entry(run.path, lambda p=run.path: load_run(p), _bundle_beside(run.path))
           for run, _ in runs.list_runs(results_dir)]
    folders = {e.source.name for e in out}
    for path in sorted(root.glob("*.tar.gz")):
        if path.name.removesuffix(".tar.gz") not in folders:
            out.append(_entry(path, lambda p=path: load_any(p), path))
    if not out:
        raise NotFound(f"no runs in {results_dir}", "give runs or bundles, or --results-dir DIR")
    return out


def order(entries):
    """Loaded runs by creation date and id, then those that did not load, by name; each with a unique slug."""
    def key(e):
        return (0, e.run.manifest.get("created") or "", e.run.run_id) if e.run else (1, "", e.source.name)
    entries = sorted(entries, key=key)
    taken = set()
    for e in entries:
        e.slug = views.slug_for(e.name, taken)
    return entries


# ---------------------------------------------------------------- writing

class Site:
    def __init__(self, folder, previous, say):
        self.folder, self.previous, self.say = Path(folder), previous, say
        self.env = environment()
        self.pages = 0

    def write(self, rel, data):
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode("utf-8")
        path.write_bytes(data)
        return path

    def page(self, rel, template, **context):
        root = "../" * rel.count("/")
        source = published.published()["source"]
        html = self.env.get_template(template).render(root=root, version=__version__, source=source, **context)
        self.pages += 1
        return self.write(rel, html)

    def old(self, dest):
        """The same file in the site this build replaces, if any."""
        return self.previous / dest.relative_to(self.folder) if self.previous else None


def bundle_info(entry, problems):
    """The bundle a reader can download: copied name, sha256, and what `kit bundle verify` says of it."""
    data = entry.bundle.read_bytes()
    name = f"{entry.slug}.tar.gz"
    return {"name": name, "href": f"{entry.slug}/{name}", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "command": f"kit bundle verify {name}", "ok": not problems,
            "result": [views.shorten(f"{name}: {p}", 400) for p in problems[:10]] + [f"{name}: {'FAILED' if problems else 'ok'}"],
            "data": data}


def _problems(check):
    try:
        return check.result()
    except (KitError, OSError, ValueError) as e:
        return [f"could not be checked: {e}"]


class Inline:
    """An executor that runs each task at once (one CPU: no worker processes)."""

    def submit(self, fn, *args):
        future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as e:
            future.set_exception(e)
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def pool(workers):
    workers = workers or os.cpu_count() or 1
    # fork: the workers start with what is imported here (_write imports the drawing code first)
    return Inline() if workers <= 1 else ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def events_files(entries):
    rows = [row for e in entries if e.run for row in views.event_rows(e)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(views.EVENT_FIELDS)
    for row in rows:
        writer.writerow(["" if v is None else json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
                         for v in row.values()])
    doc = {"columns": list(views.EVENT_FIELDS), "events": rows}
    return buf.getvalue(), json.dumps(doc, indent=None, sort_keys=True, separators=(",", ":")) + "\n"


def build(sources, out, results_dir, say, draw=True, workers=None):
    """Write the site of these sources (default: every run in results_dir) to `out`; return index.html's path."""
    started = time.monotonic()
    out = Path(out)
    _check_out(out)
    entries = order(collect(sources, results_dir))
    loaded = [e for e in entries if e.run]
    say(f"site: {len(loaded)} run(s) read" + (f", {len(entries) - len(loaded)} could not be" if len(loaded) < len(entries)
                                              else "") + f" ({time.monotonic() - started:.1f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        site = Site(tmp, out if out.is_dir() else None, say)
        _write(site, entries, draw, workers)
        os.chmod(tmp, 0o755)
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"site: {site.pages} page(s) in {out} ({time.monotonic() - started:.1f} s)")
    return out / "index.html"


def _check_out(out):
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file", "give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise BadInput(f"--out {out} is a folder that is not a site made by `kit site`; it would be replaced",
                       "give a new or empty folder")


def _write(site, entries, draw, workers):
    """Bundle checks and figures go to worker processes first; the pages are written meanwhile."""
    loaded = [e for e in entries if e.run]
    figures = {e.slug: figs.run_figures(e.run, e.tables) if draw else [] for e in loaded}
    jobs = [(f, site.folder / "runs" / e.slug / "figures" / f.name) for e in loaded for f in figures[e.slug] if not f.skipped]
    # a name is what a figure shows: any run's file of that name has its bytes
    stored = {name: path for e in loaded if e.source.is_dir() for name, path in figs.stored(e.source, figures[e.slug]).items()}
    todo, copied = figs.reuse(jobs, lambda f, dest: site.old(dest), lambda f, dest: stored.get(f.name))
    if todo:
        plot.builders()         # matplotlib, once, before the workers fork
    with pool(workers) as workers:
        checks = {e.slug: workers.submit(bundle.verify_bundle, e.bundle) for e in loaded if e.bundle}
        drawing = [workers.submit(figs.draw, f.plot, dest) for f, dest in todo]
        try:
            if jobs:
                site.say(f"site: {len(jobs)} figure(s): {len(todo)} to draw, {copied[0]} kept from the last build, "
                         f"{copied[1]} copied from the runs' figures/")
            _write_pages(site, entries, figures, checks)
            for i, future in enumerate(as_completed(drawing), 1):
                future.result()
                if i == len(drawing) or i % max(len(drawing) // 10, 1) == 0:
                    site.say(f"site: figures drawn: {i}/{len(drawing)}")
        except BaseException:       # Ctrl-C or a failed figure: the figures not started yet are not drawn
            for future in [*checks.values(), *drawing]:
                future.cancel()
            raise


def _write_pages(site, entries, figures, checks):
    site.write(MARKER, "a site written by `kit site`: the next build replaces this whole folder\n")
    for name in ASSETS:
        site.write(f"assets/{name}", resources.files("kit.site").joinpath("assets", name).read_bytes())
    pair_list = views.pairs(entries)
    for a, b in pair_list:
        site.page(f"compare/{views.pair_slug(a, b)}.html", "compare.html", a=a, b=b,
                  sources=[{"gpu": None, "tables": views.pair_compare(a, b), "missing": []}],
                  title=f"{a.run.run_id} against {b.run.run_id}")
    csv_text, json_text = events_files(entries)
    site.write("data/events.csv", csv_text)
    site.write("data/events.json", json_text)
    rows = []
    for e in entries:
        if not e.run:
            rows.append({"slug": None, "source": str(e.source), "error": views.shorten(e.error, 400)})
            continue
        for n, table in e.tables.items():
            site.write(f"runs/{e.slug}/tables/table{n}.json", json_file(table))
        if e.guide:
            site.write(f"runs/{e.slug}/tables/guide.json", e.guide["json"])
        if e.tables:      # a sweep has no table of the study's to hold against the published ones
            site.page(f"compare/{e.slug}--published.html", "compare.html", a=e, b=None,
                      sources=views.published_compare(e), title=f"{e.run.run_id} against the published numbers")
        info = bundle_info(e, _problems(checks[e.slug])) if e.slug in checks else None
        if info:
            site.write(f"runs/{e.slug}/{info['name']}", info.pop("data"))
        rows.append(views.matrix_row(e, info))
        others = [(b if a is e else a, views.pair_slug(a, b)) for a, b in pair_list if e in (a, b)]
        site.page(f"runs/{e.slug}.html", "run.html", entry=e, run=e.run, bundle=info, figures=figures[e.slug],
                  tables=[views.table_view(t) for t in e.tables.values()], loads=views.loads_view(e.run),
                  checks=views.checks_view(e), guide=e.guide,
                  provenance=views.provenance(e.run), others=others, row=rows[-1])
    site.page("index.html", "index.html", rows=rows, columns=views.table_columns(), published_rows=views.published_headlines(),
              pairs=[(a, b, views.pair_slug(a, b)) for a, b in pair_list], runs=len([e for e in entries if e.run]))
