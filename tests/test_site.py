"""kit site: the static results site, read as a reader would.

Unit tier (html5lib; small fabricated sites without figures): compare pages carry kit compare's marks, the events
files hold every event, a run that does not load is a row that says why, `kit site` says what it did.
Render tier (marker `render`: the committed reference runs' site, and sites with figures): every run page shows its
tables with the numbers of the table JSON, the index has one row per run with its headline ratios, every internal
link and asset resolves, nothing is fetched from outside (the only absolute URL is a plain link to the published
study), every image is an SVG with alt text, the same inputs give the same bytes, and a hostile run folder gives an
escaped, complete page.
Browser tier (marker `browser`): Debian's chromium loads every page of the reference site at 1280 and 390 px.
"""
import functools
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import html5lib
import pytest

from conftest import ROOT
from fabricate import fabricate_run
from kit import bundle, layout, results, site
from kit.cli import main
from kit.site import figures as figs
from kit.site import views
from kit.errors import BadInput
from kit.results import compare as comparing
from kit.results import published

REFERENCE = ROOT / "results" / "reference"
NS = {"h": "http://www.w3.org/1999/xhtml"}
PUBLISHED_URL = published.published()["source"]["url"]


def parse(path):
    return parse_bytes(Path(path).read_bytes())


@functools.lru_cache(maxsize=64)
def parse_bytes(data):
    """One parse per page content (html5lib is pure Python; the tests read the trees, never change them); a site
    has fewer pages than this keeps."""
    return html5lib.parse(data, treebuilder="etree", namespaceHTMLElements=False)


def text(el):
    return " ".join("".join(el.itertext()).split())


def reference_runs():
    return sorted(p for p in REFERENCE.iterdir() if (p / layout.MANIFEST).is_file())


def pages(folder):
    return sorted(Path(folder).rglob("*.html"))


def quiet(_line):
    pass


@pytest.fixture(scope="module")
def reference_site(tmp_path_factory):
    """The committed references as a site, without figures (the figure tests use small fabricated runs)."""
    out = tmp_path_factory.mktemp("site") / "reference"
    site.build([], out, REFERENCE, say=quiet, draw=False)
    return out


@pytest.fixture(scope="module")
def fabricated_runs(tmp_path_factory):
    """Two runs of one GPU type with two repeats (so compare marks apart/overlap), the first bundled."""
    results_dir = tmp_path_factory.mktemp("results")
    first = fabricate_run(results_dir, tables=(1,), repeat=2, run_id="run-one")
    fabricate_run(results_dir, tables=(1,), repeat=2, run_id="run-two", arm_opts={"l1": {"scale": [3, 3.2]}})
    bundle.make_bundle(first, render=results.write_tables, figures=False)
    return results_dir


@pytest.fixture(scope="module")
def fabricated(fabricated_runs, tmp_path_factory):
    """The site of both fabricated runs, without figures (the render tier draws them: `drawn`)."""
    out = tmp_path_factory.mktemp("site") / "fab"
    site.build([], out, fabricated_runs, say=quiet, draw=False)
    return fabricated_runs, out


@pytest.fixture(scope="module")
def drawn(fabricated_runs, tmp_path_factory):
    """The site of both fabricated runs with its figures."""
    out = tmp_path_factory.mktemp("site") / "drawn"
    site.build([], out, fabricated_runs, say=quiet)
    return fabricated_runs, out


# ---------------------------------------------------------------- numbers

def fmt(x, unit):
    """The table's number format, written out here: seconds 3 decimals, GB/s and ratios 2, MiB and tokens 1 or none."""
    if unit == "s":
        return f"{x:.3f}"
    if unit in ("GB/s", "ratio"):
        return f"{x:.2f}"
    return f"{x:.1f}".removesuffix(".0")


@pytest.mark.render
def test_every_run_page_has_its_tables_with_the_numbers_of_the_table_json(reference_site):
    runs = reference_runs()
    assert len(runs) >= 9
    for run_dir in runs:
        doc = parse(reference_site / "runs" / f"{run_dir.name}.html")
        files = sorted((run_dir / "tables").glob("table*.json"))
        sections = doc.findall(".//section[@data-table]")
        assert [s.get("data-table") for s in sections] == [f.stem[5:] for f in sorted(files, key=lambda f: int(f.stem[5:]))]
        for f in files:
            table = json.loads(f.read_text())
            section = next(s for s in sections if s.get("data-table") == str(table["table"]))
            grid = section.find(".//table[@data-grid='main']")
            trs = grid.findall("./tbody/tr")
            assert len(trs) == len(table["rows"]), (run_dir.name, f.name)
            for tr, row in zip(trs, table["rows"]):
                assert (tr.get("data-metric"), tr.get("data-model")) == (row["metric"], row["model"] or "-")
                cells = [text(c) for c in tr]
                for s in table["arms"]:
                    cell = row["arms"][s["arm"]]
                    if s["state"] in ("ok", "suspect") and cell:
                        assert fmt(cell["median"], row["unit"]) in cells, (f.name, row["metric"], s["arm"])
                        assert f"{fmt(cell['min'], row['unit'])}..{fmt(cell['max'], row['unit'])}" in cells
                if row["ratio"] is not None:
                    assert fmt(row["ratio"], "ratio") in cells
                for pub in row["published"]:
                    for cell in pub["arms"].values():
                        if cell:
                            assert fmt(cell["median"], row["unit"]) in cells
            memory = section.find(".//table[@data-grid='memory']")
            assert (memory is not None) == bool(table["memory"])
            if memory is not None:
                assert len(memory.findall("./tbody/tr")) == len(table["memory"])
            shown = text(section)
            for note in table["notes"]:
                assert " ".join(note.split()) in shown
            # the page links the same table data as JSON
            linked = reference_site / "runs" / run_dir.name / "tables" / f.name
            assert json.loads(linked.read_text()) == table


@pytest.mark.render
def test_a_sweeps_page_has_its_guide_grid_and_lines_and_its_grown_provenance(reference_site):
    sweeps = [r for r in reference_runs() if (r / "tables" / "guide.json").is_file()]
    assert len(sweeps) >= 2
    for run_dir in sweeps:
        guide = json.loads((run_dir / "tables" / "guide.json").read_text())
        doc = parse(reference_site / "runs" / f"{run_dir.name}.html")
        section = doc.find(".//section[@id='guide']")
        trs = section.findall(".//table[@data-grid='guide']/tbody/tr")
        assert [text(tr[0]) for tr in trs] == [r["slug"] for r in guide["rows"]]
        for tr, row in zip(trs, guide["rows"]):
            cells = [text(c) for c in tr]
            assert cells[2].startswith(f"L{row['level']}") and f"{row['switch']['median']:.3f}" in cells
        shown = text(section)
        for line in [guide["crossover"]["text"], guide["first_crossover"]["text"], *guide["notes"]]:
            assert " ".join(line.split()) in shown
        linked = reference_site / "runs" / run_dir.name / "tables" / "guide.json"
        assert json.loads(linked.read_text()) == guide
    # no compare page: a sweep shares no table with another run, nor with the published ones
    assert not [p.name for p in (reference_site / "compare").iterdir() if any(r.name in p.name for r in sweeps)]
    grown = parse(reference_site / "runs" / "h100-vllm0.24.0-guide.html").find(".//section[@id='provenance']")
    shown = text(grown)
    assert "qwen3-32b = /mnt/twins/qwen3-32b (twin of qwen3-32b" in shown      # the sweep's models, with digests
    assert "--add-models /mnt/twins/qwen3-32b" in shown and "commit fc9809714052c45bc8dfb41412ded9dff7a0cde7" in shown
    # kits before resumes recorded their commit
    assert "commit not recorded, image sleepkit:vllm0.24.0-kit0.1.0-7cff9658d43e" in shown


@pytest.mark.render
def test_index_has_one_row_per_run_with_its_headline_ratios_and_the_published_rows(reference_site):
    doc = parse(reference_site / "index.html")
    rows = doc.findall(".//table[@id='matrix']/tbody[@class='runs']/tr")
    assert sorted(text(r.find("th")) for r in rows) == [p.name for p in reference_runs()]
    heads = [text(th) for th in doc.findall(".//table[@id='matrix']/thead/tr/th")]
    for tr in rows:
        run_dir = REFERENCE / text(tr.find("th"))
        tds = [td for td in tr.findall("td") for _ in range(int(td.get("colspan", 1)))]   # a sweep's guide spans
        cells = dict(zip(heads[1:], [text(td) for td in tds]))
        guide = run_dir / "tables" / "guide.json"
        if guide.is_file():     # a sweep: its crossovers where the tables' ratios would be
            crossovers = json.loads(guide.read_text())
            (shown,) = {v for k, v in cells.items() if k.startswith("Table ")}      # one cell under all five
            assert shown.startswith(f"guide: {crossovers['first_crossover']['text']}")
            assert shown.endswith(crossovers["crossover"]["text"])
        for f in (run_dir / "tables").glob("table*.json"):
            table = json.loads(f.read_text())
            switch_a = next(r for r in table["rows"] if (r["metric"], r["model"]) == ("switch", "A"))
            cell = next(v for k, v in cells.items() if k.startswith(f"Table {table['table']}"))
            blocked = (switch_a.get("reason") or "").startswith("not comparable")
            expected = fmt(switch_a["ratio"], "ratio") if switch_a["ratio"] is not None else "n/c" if blocked else "-"
            assert cell.startswith(expected + " / "), (run_dir.name, table["table"], cell)
            assert ("not comparable" in cell) == any((r.get("reason") or "").startswith("not comparable")
                                                     for r in table["rows"] if r["metric"] in ("switch", "total"))
            assert (f"ran on {table['run']['devices']} GPUs" in cell) == (table["run"]["devices"] > 1), cell
        assert cells["bundle"] == "verifies"
        manifest = json.loads((run_dir / layout.MANIFEST).read_text())
        assert cells["kit commit"] == manifest["git_commit"][:12]
    published_rows = doc.findall(".//table[@id='matrix']/tbody[@class='published']/tr")
    assert [text(r.find("th")) for r in published_rows] == ["published A100, vLLM 0.11.0", "published A4000, vLLM 0.11.0"]
    a100 = comparing.published_table(1, "a100")
    ratio = a100.row("switch", "A").ratio
    assert text(published_rows[0].findall("td")[1]).startswith(fmt(ratio, "ratio"))


@pytest.mark.render
def test_old_runs_of_manifest_schema_1_appear(reference_site):
    old = [p for p in reference_runs() if "schema" not in json.loads((p / layout.MANIFEST).read_text())]
    assert old, "the references include kit 0.1.0 runs"
    for run_dir in old:
        doc = parse(reference_site / "runs" / f"{run_dir.name}.html")
        facts = dict(zip([text(x) for x in doc.iter("dt")], [text(x) for x in doc.iter("dd")]))
        assert facts["manifest schema"] == "1"
        assert doc.findall(".//section[@data-table]")


@pytest.mark.render
def test_bundle_is_published_with_its_sha256_and_the_verify_line(reference_site):
    import hashlib
    for run_dir in reference_runs():
        page = text(parse(reference_site / "runs" / f"{run_dir.name}.html"))
        copied = reference_site / "runs" / run_dir.name / f"{run_dir.name}.tar.gz"
        original = REFERENCE / f"{run_dir.name}.tar.gz"
        assert copied.read_bytes() == original.read_bytes()
        assert hashlib.sha256(copied.read_bytes()).hexdigest() in page
        assert f"kit bundle verify {copied.name}" in page and f"{copied.name}: ok" in page


def test_compare_pages_carry_kit_compares_apart_and_overlap_marks(fabricated):
    results_dir, out = fabricated
    a, b = (results.load_run(results_dir / r) for r in ("run-one", "run-two"))
    cmp = comparing.compare(results.build_table(a, 1), results.build_table(b, 1), 1)
    doc = parse(out / "compare" / "run-one--run-two.html")
    trs = doc.findall(".//table[@data-grid='compare']/tbody/tr")
    assert len(trs) == len(cmp.rows)
    marks = {False: "apart", True: "overlap"}
    seen = set()
    for tr, row in zip(trs, cmp.rows):
        cells = [text(c) for c in tr][2:]
        for i, arm in enumerate(("l1", "nosleep")):
            c = row.arms[arm]
            if c.ratio is not None:
                assert cells[3 * i + 2] == f"{c.ratio:.2f}" + (f" {marks[c.overlap]}" if c.overlap is not None else "")
                seen.add(c.overlap)
    assert {True, False} <= seen, "the fabricated runs give both marks"
    published_page = parse(out / "compare" / "run-one--published.html")
    assert [text(h) for h in published_page.findall(".//h2")] == ["Against published A100", "Against published A4000"]


def test_events_csv_and_json_hold_every_event_of_every_run(fabricated):
    import csv
    results_dir, out = fabricated
    expected = sum(len(rep.events) for r in ("run-one", "run-two")
                   for reps in results.load_run(results_dir / r).units.values() for rep in reps)
    with open(out / "data" / "events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    doc = json.loads((out / "data" / "events.json").read_text())
    assert len(rows) == len(doc["events"]) == expected
    assert list(rows[0]) == doc["columns"]
    assert {"run", "gpu", "arm", "repeat", "round", "model", "kind", "duration_s", "gpu_mib_before", "rss_mib_after"} \
        <= set(doc["columns"])
    assert {r["run"] for r in rows} == {"run-one", "run-two"}
    assert rows[0]["gpu"] == "NVIDIA H100 80GB HBM3"


# ---------------------------------------------------------------- links, images, no network

def check_links(folder):
    """Every href/src of every page: relative ones resolve to a file (and an id for #fragments); no absolute
    URL but plain <a> links to the published study."""
    folder = Path(folder)
    for page in pages(folder):
        doc = parse(page)
        ids = {el.get("id") for el in doc.iter() if el.get("id")}
        for el in doc.iter():
            for attr in ("href", "src"):
                url = el.get(attr)
                if url is None:
                    continue
                parts = urlsplit(url)
                if parts.scheme in ("http", "https"):
                    assert el.tag == "a" and attr == "href" and url == PUBLISHED_URL, (page, el.tag, url)
                    continue
                if parts.scheme == "data":
                    assert el.tag == "link" and el.get("rel") == "icon", (page, url)
                    continue
                assert not parts.scheme and not parts.netloc and not url.startswith("/"), (page, url)
                if not parts.path:
                    assert parts.fragment in ids, (page, url)
                    continue
                target = (page.parent / unquote(parts.path)).resolve()
                assert target.is_file() and folder.resolve() in target.parents, (page, url)
                if parts.fragment:
                    assert parts.fragment in {e.get("id") for e in parse(target).iter() if e.get("id")}, (page, url)


@pytest.mark.render
def test_every_internal_link_and_asset_resolves_and_nothing_is_fetched_from_outside(reference_site, fabricated):
    check_links(reference_site)
    check_links(fabricated[1])
    for css in reference_site.rglob("*.css"):
        assert not re.search(r"url\(|@import", css.read_text()), "the style sheet loads nothing"
    for js in reference_site.rglob("*.js"):
        assert not re.search(r"fetch\(|XMLHttpRequest|import\(|https?:", js.read_text())


@pytest.mark.render
def test_every_figure_is_an_svg_with_alt_text(drawn):
    results_dir, out = drawn
    check_links(out)                                              # the figures' links resolve too
    doc = parse(out / "runs" / "run-one.html")
    images = doc.findall(".//img")
    run = results.load_run(results_dir / "run-one")
    from kit import plot
    assert len(images) == len(plot.figure_stems(run, [1])) == 5     # bars, timeline, two memory, loads
    for img in images:
        assert len(img.get("alt", "")) > 40, img.get("src")
        data = (out / "runs" / img.get("src")).read_bytes()
        assert b"<svg" in data[:2000]


@pytest.mark.render
def test_the_same_inputs_give_the_same_bytes_and_a_rebuild_keeps_the_figures(drawn, tmp_path):
    results_dir, first = drawn
    said = []
    site.build([], tmp_path / "again", results_dir, say=said.append)       # drawn again, elsewhere
    assert tree(first) == tree(tmp_path / "again")
    assert not any(re.search(r"20\d\d-\d\d-\d\dT", p.read_text()) and "2025-01-01" not in p.read_text()
                   for p in pages(first)), "no build date in a page"
    said.clear()
    site.build([], tmp_path / "again", results_dir, say=said.append)       # into its own earlier site
    assert any("0 to draw" in line for line in said), said
    assert tree(first) == tree(tmp_path / "again")


@pytest.mark.render
def test_a_runs_stored_figures_are_copied_when_current_and_equal_freshly_drawn_ones(tmp_path):
    from kit import plot
    results_dir = tmp_path / "results"
    run_dir = fabricate_run(results_dir, tables=(1,), run_id="plotted")
    plot.plot_run(results.load_run(run_dir), [1])
    figures = layout.RunDir(run_dir).figures_dir
    built = {}

    def build(name):
        said = []
        site.build([], tmp_path / name, results_dir, say=said.append)
        built[name] = tree(tmp_path / name)
        return next(line for line in said if "to draw" in line)

    assert "5 figure(s): 0 to draw, 0 kept from the last build, 5 copied from the runs' figures/" in build("copied")
    index = json.loads((figures / plot.INDEX).read_text())
    index["figures"]["loads"] = "0" * 64            # what loads.svg shows is not what the site would draw
    (figures / plot.INDEX).write_text(json.dumps(index))
    assert "1 to draw" in build("one-stale") and built["one-stale"] == built["copied"]
    run = results.load_run(run_dir)
    assert len(figs.stored(run_dir, figs.run_figures(run, views.load_tables(run)))) == 4
    (figures / plot.INDEX).write_text(json.dumps(dict(index, matplotlib="0.1")))     # another matplotlib's files
    assert figs.stored(run_dir, figs.run_figures(run, views.load_tables(run))) == {}
    (figures / plot.INDEX).write_text(json.dumps(index))
    (figures / "table1-bars.svg").unlink()
    (figures / "table1-bars.svg").symlink_to(tmp_path / "copied" / "index.html")    # a file from elsewhere
    assert len(figs.stored(run_dir, figs.run_figures(run, views.load_tables(run)))) == 3
    shutil.rmtree(figures)
    assert "5 to draw" in build("drawn")
    assert built["drawn"] == built["copied"], "a copied figure is the one drawn, byte for byte"


def test_the_committed_reference_figures_are_what_kit_plot_draws_now():
    from kit import plot
    stale = []
    for run_dir in reference_runs():
        run = results.load_run(run_dir)
        folder = layout.RunDir(run_dir).figures_dir
        index = plot.read_index(folder, any_matplotlib=True)
        if any(index.get(p.stem) != p.digest or not (folder / f"{p.stem}.svg").is_file() for p in plot.plots(run, run.tables)):
            stale.append(run_dir.name)
    assert not stale, (f"the figures of {len(stale)} reference run(s) ({', '.join(stale[:2])}{', ...' * (len(stale) > 2)}) are "
                       "not what kit plot draws now: run `make reference-figures` and commit results/reference")


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- bad input

def test_a_run_that_does_not_load_is_a_row_that_says_why(tmp_path):
    results_dir = tmp_path / "results"
    fabricate_run(results_dir, tables=(1,), run_id="good")
    damaged = fabricate_run(results_dir, tables=(1,), run_id="damaged")
    (damaged / layout.MANIFEST).write_text("{ not json")
    broken = fabricate_run(results_dir, tables=(1,), run_id="broken-events")
    (broken / "l1" / "r1" / layout.EVENTS).write_text('{"kind": "load"}\n')
    out = tmp_path / "site"
    site.build([], out, results_dir, say=quiet, draw=False)
    rows = parse(out / "index.html").findall(".//tbody[@class='runs']/tr")
    by_name = {text(r.find("th")).rsplit("/", 1)[-1]: text(r) for r in rows}
    assert set(by_name) == {"good", "damaged", "broken-events"}
    assert "could not be read" in by_name["damaged"] and "not JSON" in by_name["damaged"]
    assert "could not be read" in by_name["broken-events"] and "events" in by_name["broken-events"]
    assert "could not be read" not in by_name["good"]
    check_links(out)


def test_a_sweep_whose_guide_cannot_be_built_is_a_row_that_says_why(tmp_path):
    """A sweep's guide is read from its manifest's sweep part: one of an unexpected shape is that run's
    'could not be read' row, as a damaged table run's is, not the end of the whole site."""
    results_dir = tmp_path / "results"
    fabricate_run(results_dir, tables=(1,), run_id="good")
    sweep = shutil.copytree(REFERENCE / "h100-vllm0.24.0-guide", results_dir / "damaged-sweep")
    record = json.loads((sweep / layout.MANIFEST).read_text())
    del record["sweep"]["models"][0]["estimate"]
    (sweep / layout.MANIFEST).write_text(json.dumps(record))
    out = tmp_path / "site"
    site.build([], out, results_dir, say=quiet, draw=False)
    rows = parse(out / "index.html").findall(".//tbody[@class='runs']/tr")
    by_name = {text(r.find("th")).rsplit("/", 1)[-1]: text(r) for r in rows}
    assert set(by_name) == {"good", "damaged-sweep"}
    assert "could not be read" in by_name["damaged-sweep"] and "estimate" in by_name["damaged-sweep"]
    assert "could not be read" not in by_name["good"]
    check_links(out)


def test_an_out_folder_that_is_not_a_site_is_refused_and_left_alone(tmp_path):
    results_dir = tmp_path / "results"
    fabricate_run(results_dir, tables=(1,), run_id="good")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(BadInput, match="not a site"):
        site.build([], mine, results_dir, say=quiet, draw=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary folder left"


def test_cli_writes_the_site_with_progress_and_a_missing_run_is_one_line(tmp_path, capsys):
    results_dir = tmp_path / "results"
    fabricate_run(results_dir, tables=(1,), run_id="good")
    code = main(["site", "--results-dir", str(results_dir), "--out", str(tmp_path / "site"), "--no-figures"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "site" / "index.html")
    assert "site: 1 run(s) read" in err and "page(s) in" in err
    code = main(["site", "nope", "--results-dir", str(results_dir), "--out", str(tmp_path / "other")])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "nope" in err
    assert not (tmp_path / "other").exists()


HOSTILE_MODEL = '<script>alert("model")</script>'
HOSTILE_NOTE = '</table></section><script>alert("note")</script>'


def hostile_run(results_dir):
    """A run whose model name is a script, whose failed repeat's error closes the table, and whose other arm
    has a 10 MB events file."""
    run_dir = fabricate_run(results_dir, tables=(1,), run_id="hostile", arm_opts={"l1": {"fail_at": 5}})
    path = run_dir / layout.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["models"]["A"]["name"] = manifest["options"]["model_a"] = HOSTILE_MODEL
    path.write_text(json.dumps(manifest))
    status = run_dir / "l1" / "r1" / layout.STATUS
    status.write_text(json.dumps(dict(json.loads(status.read_text()), error=HOSTILE_NOTE)))
    events = run_dir / "nosleep" / "r1" / layout.EVENTS
    lines = events.read_text().splitlines()
    last = json.loads(lines[-1])
    padding = []
    size, seq = sum(len(x) + 1 for x in lines), last["seq"]
    while size < 10 * 2**20:
        seq += 1
        line = json.dumps(dict(last, seq=seq, kind="prompt", model="A", round=1, duration_s=0.5, ttft_s=0.05,
                               output_tokens=100, error=None, ok=True))
        padding.append(line)
        size += len(line) + 1
    events.write_text("\n".join(lines[:-1] + padding + lines[-1:]) + "\n")
    assert events.stat().st_size >= 10 * 2**20
    return run_dir


@pytest.mark.render
def test_a_hostile_run_folder_gives_an_escaped_complete_page(tmp_path):
    hostile_run(tmp_path / "results")
    out = tmp_path / "site"
    site.build([], out, tmp_path / "results", say=quiet)
    page = out / "runs" / "hostile.html"
    raw = page.read_text()
    assert raw.rstrip().endswith("</html>") and page.stat().st_size < 2 * 2**20
    doc = parse(page)
    assert [s.get("src") for s in doc.iter("script")] == ["../assets/sort.js"], "no script but the site's own"
    whole = text(doc)
    assert HOSTILE_MODEL in whole and " ".join(HOSTILE_NOTE.split()) in whole
    assert doc.find(".//section[@data-table='1']//table[@data-grid='main']") is not None
    assert [s.get("id") for s in doc.iter("section")] == ["provenance", "table1", "loads", "memory", "checks", "bundle",
                                                         "compare"]
    assert doc.find(".//footer") is not None
    assert "not drawn" in whole and "more than the 2,000" in whole        # the 10 MB arm's timeline and memory
    assert [s.get("src") for s in parse(out / "index.html").iter("script")] == ["assets/sort.js"]
    check_links(out)


# ---------------------------------------------------------------- in a real browser

SHOTS = ROOT / "build" / "site-screenshots"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from browser import Browser, binary
    from docker_fixtures import unavailable
    if binary() is None:
        unavailable("chromium is not installed", "install it with `bash .ci/browser-up.sh`")
    with Browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


@pytest.fixture(scope="module")
def reference_site_with_figures():
    """The reference site as `make site` builds it, in build/site-browser (a rerun keeps its figures)."""
    out = ROOT / "build" / "site-browser"
    site.build([], out, REFERENCE, say=quiet)
    return out


@pytest.mark.browser
def test_every_page_of_the_reference_site_in_chromium_at_1280_and_390_px(browser, reference_site_with_figures):
    folder = reference_site_with_figures
    shutil.rmtree(SHOTS, ignore_errors=True)
    all_pages = pages(folder)
    assert len(all_pages) >= 1 + 8 + 8
    for page in all_pages:
        rel = page.relative_to(folder).as_posix()
        for width in (1280, 390):
            loaded = browser.load(page, width)
            assert loaded["errors"] == [], (rel, width)
            outside = [u for u in loaded["requests"] if urlsplit(u).scheme not in ("file", "data")]
            assert outside == [], (rel, outside)
            bad = browser.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                                   ".map(i => i.getAttribute('src'))")
            assert bad == [], (rel, width)
            if width == 390:
                assert browser.evaluate("document.documentElement.scrollWidth") <= 390, rel
            if rel in ("index.html", "runs/h200-vllm0.24.0-twins-docker.html"):
                browser.screenshot(SHOTS / f"{Path(rel).stem.replace('h200-vllm0.24.0-twins-docker', 'run')}-{width}.png")
    browser.load(folder / "index.html", 1280)
    assert browser.evaluate("document.querySelectorAll('#matrix tbody.runs tr').length") == len(reference_runs())
    first = "document.querySelector('#matrix tbody.runs tr th').textContent"
    before = browser.evaluate(first)
    browser.evaluate("document.querySelector('#matrix thead th').click(); document.querySelector('#matrix thead th').click()")
    assert browser.evaluate(first) == max(p.name for p in reference_runs()) != before, "the script sorts by run"
    # by repeats: a sweep's row (one cell under the five tables) sorts by its own repeats, not by a shifted cell
    browser.evaluate("Array.from(document.querySelectorAll('#matrix thead th')).find(th => th.textContent === 'repeats')"
                     ".click()")
    order = browser.evaluate("Array.from(document.querySelectorAll('#matrix tbody.runs tr th')).map(th => th.textContent)")
    repeats = {p.name: json.loads((p / layout.MANIFEST).read_text())["options"]["repeat"] for p in reference_runs()}
    assert [repeats[name] for name in order] == sorted(repeats.values()) and max(repeats.values()) > 1
    assert sorted(p.name for p in SHOTS.iterdir()) == ["index-1280.png", "index-390.png", "run-1280.png", "run-390.png"]
