"""kit.plot on fabricated runs: the bars are the tables' numbers (medians, min..max) with the published ones
beside them; every figure carries its provenance, is written as PNG (200 dpi) and SVG, byte for byte the
same when re-plotted; failed, unfinished and not-run arms are drawn as such; memory changes are shown at
their size; the timeline ends where its data ends.
The tests of what a drawn figure shows, or of its files, are the render tier (marker `render`: matplotlib takes
seconds, and they import the drawing modules, kit.plot.charts and kit.plot.traces, where they draw); the specs the
figures are drawn from are unit tests, and import no matplotlib."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from fabricate import GPU_ASLEEP, GPU_SERVER, WEIGHTS_MIB, fabricate_run
from kit import layout, plot, results
from kit.plot import specs
from kit.workload import scenarios
from kit.workload.steps import steps

ALL = [1, 2, 3, 4, 5]
ROOT = Path(__file__).resolve().parents[1]


def texts(fig):
    import matplotlib.text
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    """Tables 1-5, two repeats, l1-fp8 failed (its warm-up B, in every repeat), models A and B twins; the
    tables written (the figures' specs are read from the run; only the render tier writes figure files)."""
    run_dir = fabricate_run(tmp_path_factory.mktemp("results"), tables=ALL, repeat=2,
                            arm_opts={"l1-fp8": {"fail_at": 5}})
    manifest = json.loads(layout.RunDir(run_dir).manifest_path.read_text())
    manifest["models"]["A"]["twin"] = "qwen3-0.6b"
    layout.write_json(layout.RunDir(run_dir).manifest_path, manifest)
    run = results.load_run(run_dir)
    results.write_tables(run, ALL)
    return run


@pytest.fixture(scope="module")
def drawn(five):
    """Every figure of the five tables written once, as `kit plot` writes them (PNG and SVG)."""
    return five, plot.plot_run(five, ALL)


@pytest.mark.render
def test_plot_run_writes_every_expected_png_and_svg(drawn):
    run, paths = drawn
    names = [p.name for p in paths]
    stems = [f"table{n}-{k}" for n in ALL for k in ("bars", "timeline")] + [f"memory-{a}" for a in scenarios.ARMS]
    stems.append("loads")
    assert sorted(names) == sorted(plot.expected_figures(run, ALL)) == sorted(f"{s}.{x}" for s in stems
                                                                               for x in ("png", "svg"))
    figures = layout.RunDir(run.source).figures_dir
    assert sorted(p.name for p in figures.iterdir()) == sorted([*names, plot.INDEX])
    for p in paths:
        if p.suffix == ".png":
            with Image.open(p) as im:
                assert [round(d) for d in im.info["dpi"]] == [200, 200], p.name
                assert im.size[0] == 3000 and 1200 <= im.size[1] <= 2400, (p.name, im.size)
        else:
            head = p.read_bytes()
            assert head.startswith(b"<?xml") and b"<svg" in head[:2000], p.name


@pytest.mark.render
def test_files_carry_no_date_or_version_and_replot_gives_the_same_bytes(drawn):
    run, paths = drawn
    before = {p.name: p.read_bytes() for p in paths}
    for name, data in before.items():
        assert b"matplotlib v" not in data.lower() and b"<dc:date>" not in data, name
    again = plot.plot_run(run, [4])       # a subset: the memory axes are the run's, whatever is re-plotted
    assert {p.name for p in again} == {f"table4-{k}.{x}" for k in ("bars", "timeline") for x in ("png", "svg")} | {
        f"memory-{u}.{x}" for u in ("l1", "l2") for x in ("png", "svg")} | {"loads.png", "loads.svg"}
    assert {p.name: p.read_bytes() for p in again} == {p.name: before[p.name] for p in again}


@pytest.mark.render
def test_the_index_gives_each_figure_the_digest_of_what_it_shows_and_a_subset_keeps_the_rest(drawn, monkeypatch):
    run, _ = drawn
    folder = layout.RunDir(run.source).figures_dir
    plot.plot_run(run, [4])
    digests = {p.stem: p.digest for p in plot.plots(run, ALL)}
    assert plot.read_index(folder) == digests and len(set(digests.values())) == len(digests)
    monkeypatch.setattr(plot, "code_digest", lambda: "another drawing code")
    assert all(p.digest != digests[p.stem] for p in plot.plots(run, ALL)), "a change of the drawing code"
    doc = json.loads((folder / plot.INDEX).read_text())
    (folder / plot.INDEX).write_text(json.dumps(dict(doc, matplotlib="0.1")))
    assert plot.read_index(folder) == {} and plot.read_index(folder, any_matplotlib=True) == digests
    (folder / plot.INDEX).write_text(json.dumps(doc))
    import matplotlib
    assert doc["matplotlib"] == plot.matplotlib_version() == matplotlib.__version__


def test_the_specs_and_the_list_of_figures_import_no_matplotlib():
    """What only reads a run's figures' specs (tests, the site's alt texts and stored figures, bundle) does not pay
    for matplotlib; it is imported when a figure is drawn."""
    code = ("import sys, kit.plot, kit.plot.specs, kit.site.figures, kit.bundle, kit.site.build\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
            "kit.plot.builders()\nprint('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["[]", "True"]


def test_the_digest_covers_every_module_that_decides_a_figures_pixels():
    """A change of the specs or of the drawing code marks every stored figure stale: every module of kit.plot
    but the list of figures itself is in the digest."""
    modules = {p.name for p in (ROOT / "kit" / "plot").glob("*.py")} - {"__init__.py"}
    assert set(plot.PIXEL_SOURCES) == modules


@pytest.mark.parametrize("number", ALL)
def test_bar_values_are_the_table_json_medians(five, number):
    run = five
    table = json.loads((layout.RunDir(run.source).tables_dir / f"table{number}.json").read_text())
    rows = {(r["metric"], r["model"]): r for r in table["rows"]}
    spec = specs.bars_spec(run, number)
    keys = [s["key"] for s in spec.sources]
    assert keys == ["measured", *[r["gpu"] for r in table["published"]]]
    checked = 0
    for panel in spec.panels:
        for bar in panel["bars"]:
            row = rows[panel["metric"], bar["group"]]
            i = keys.index(bar["source"])
            cell = row["arms"][bar["arm"]] if i == 0 else row["published"][i - 1]["arms"][bar["arm"]]
            if cell is None:
                assert bar["median"] is None and bar["note"], bar
                continue
            assert (bar["median"], bar["min"], bar["max"], bar["n"]) == (cell["median"], cell["min"], cell["max"],
                                                                        cell["n"])
            checked += 1
    assert checked >= 2 * 5 * len(keys) - (2 * 5 if number == 2 else 0)   # l1-fp8 failed: no measured bars


def test_published_numbers_beside_the_measured_ones(five):
    run = five
    spec = specs.bars_spec(run, 1)
    assert [s["label"] for s in spec.sources[1:]] == [
        "published: A100, vLLM 0.11.0 (blog figure plotly-sleep-levels-comparison)",
        "published: A4000, vLLM 0.11.0 (blog figure plotly-sleep-mode-a4000)"]
    switch = {(b["arm"], b["group"], b["source"]): b for b in spec.panels[0]["bars"]}
    # the blog's numbers (reference README): medians of the three rounds
    assert switch["nosleep", "A", "A100"]["median"] == 38.15        # loads 38.53, 37.21, 38.15
    assert switch["nosleep", "B", "A4000"]["median"] == 46.02       # loads 46.01, 46.02, 46.02
    assert switch["l1", "A", "A100"]["median"] == 0.25              # wakes 0.25, 0.28, 0.25
    for n in (2, 3, 4, 5):
        assert [s["key"] for s in specs.bars_spec(run, n).sources] == ["measured", "A100"]


@pytest.mark.render
def test_the_bars_figure_labels_the_published_references_and_their_medians(five):
    from kit.plot import charts
    fig = charts.bars_figure(specs.bars_spec(five, 1))
    assert {"published: A100, vLLM 0.11.0 (blog figure plotly-sleep-levels-comparison)", "38.1"} <= set(texts(fig))


@pytest.mark.render
def test_provenance_on_every_figure(five):
    run = five
    want = [run.run_id, "GPU: NVIDIA H100 80GB HBM3", "vLLM 0.11.0", "protocol: corrected", "output not fixed",
            "repeats: 2", "compile cache: warm", "A = Qwen/Qwen3-0.6B (twin of qwen3-0.6b",
            "B = microsoft/Phi-3-vision-128k-instruct"]
    from kit.plot import charts, traces
    figures = [charts.bars_figure(specs.bars_spec(run, 1)), traces.timeline_figure(specs.timeline_spec(run, 4)),
               traces.memory_figure(specs.memory_spec(run, "l2"))]
    for fig in figures:
        text = "\n".join(texts(fig))
        assert all(w in text for w in want), [w for w in want if w not in text]
    fixed = specs.provenance(replace(results.build_table(run, 1).run, fixed_output=True))
    assert f"output fixed at {scenarios.MAX_TOKENS} tokens" in fixed[0]


@pytest.mark.parametrize("number", ALL)
def test_timeline_shows_every_event_and_ends_where_the_data_ends(five, number):
    run = five
    spec = specs.timeline_spec(run, number)
    measured = [r for r in spec.rows if r["source"] == "measured"]
    assert [r["unit"] for r in measured] == list(scenarios.TABLES[number].arms)
    for row in measured:
        failed = row["unit"] == "l1-fp8"
        expected = [(s.kind, s.model) for s in steps(row["unit"])][:5 if failed else None]
        assert [(s["kind"], s["model"]) for s in row["segments"]] == expected
        assert (row["note"] or "").startswith("FAILED") == failed
        assert row["segments"][-1]["ok"] is not failed
    published = [r for r in spec.rows if r["source"] != "measured"]
    assert len(published) == 2 * (2 if number == 1 else 1) and all(r["segments"] for r in published)
    ends = [s["start"] + s["duration"] for r in spec.rows for s in r["segments"]]
    assert spec.end == pytest.approx(max(ends))


@pytest.mark.render
def test_the_timeline_figure_ends_where_the_data_ends_and_each_zoom_where_its_switches_do(five):
    from kit.plot import traces
    spec = specs.timeline_spec(five, 4)
    main, *zooms = traces.timeline_figure(spec).axes
    assert main.get_xlim() == pytest.approx((0, spec.end))
    for ax, zoom in zip(zooms, spec.zooms):
        switch_ends = [sw["segments"][-1]["offset"] + sw["segments"][-1]["duration"]
                       for sws in zoom["switches"].values() for sw in sws]
        assert ax.get_xlim() == pytest.approx((0, max(switch_ends)))


def test_zoom_cuts_rounds_into_switches(five):
    run = five
    zoom = specs.timeline_spec(run, 4).zooms[1]                  # l2
    switches = zoom["switches"]["measured"]
    assert [(s["round"], s["model"]) for s in switches] == [(r, m) for r in (1, 2, 3) for m in "AB"]
    assert [s["kind"] for s in switches[0]["segments"]] == ["wake", "prompt", "sleep"]
    assert [s["kind"] for s in switches[-1]["segments"]] == ["wake", "prompt"]          # no stop in a switch
    assert switches[0]["segments"][0]["offset"] == 0
    pub = zoom["switches"]["A100"]
    assert [s["duration"] for s in pub[0]["segments"]] == [0.91, 0.68, 0.13]           # the blog's L2 round 1 A


@pytest.mark.render
def test_memory_changes_are_shown_at_their_size(five):
    run = five
    from kit.plot import traces
    l1, l2 = specs.memory_spec(run, "l1"), specs.memory_spec(run, "l2")
    assert l1.first_sleep == {m: WEIGHTS_MIB[m] + 700 for m in "AB"}          # fabricate: weights + 700 MiB
    assert l2.first_sleep == {"A": 10, "B": 10}
    assert (traces.fmt_mib(10), traces.fmt_mib(WEIGHTS_MIB["B"] + 700), traces.fmt_mib(-(GPU_SERVER - GPU_ASLEEP))) == (
        "+10 MiB", "+8.4 GiB", "-22.6 GiB")
    sleeps = [p for p in l1.points if p["kind"] == "sleep"]
    assert all(p["gpu_delta"] == -(GPU_SERVER - GPU_ASLEEP) for p in sleeps)
    limits = specs.memory_limits([specs.memory_spec(run, u) for u in run.units])
    figs = {name: traces.memory_figure(replace(spec, limits=limits)) for name, spec in (("l1", l1), ("l2", l2))}
    for fig in figs.values():
        gpu, rss = fig.axes
        assert gpu.get_ylim() == (0, limits["gpu"]) and rss.get_ylim() == (0, limits["rss"])   # zero-based, shared
    assert "+10 MiB" in texts(figs["l2"]) and "+10 MiB" not in texts(figs["l1"])
    assert {"+1.8 GiB", "+8.4 GiB", "-22.6 GiB"} <= set(texts(figs["l1"]))


@pytest.mark.render
def test_failed_unfinished_and_not_run_arms_are_drawn_as_such(five, tmp_path):
    run = five
    from kit.plot import charts, traces
    bars = specs.bars_spec(run, 2)
    fp8 = [b for p in bars.panels for b in p["bars"] if b["arm"] == "l1-fp8" and b["source"] == "measured"]
    assert fp8 and all(b["median"] is None and b["note"] == "FAILED" for b in fp8)
    fig = charts.bars_figure(bars)
    assert texts(fig).count("FAILED") == len(fp8)
    assert any("l1-fp8" in t and "FAILED: r1: fabricated failure" in t for t in texts(fig))
    memory = specs.memory_spec(run, "l1-fp8")
    assert memory.note.startswith("FAILED") and [p["kind"] for p in memory.points][-1] == "warmup"

    not_run = results.load_run(fabricate_run(tmp_path / "a", tables=(4,), arms=("l1",)))
    unfinished = results.load_run(fabricate_run(tmp_path / "b", tables=(4,), complete=False,
                                                arm_opts={"l2": {"skip": True}}))
    for run2, state, word in ((not_run, "not run", "not run"), (unfinished, "unfinished", "unfinished")):
        spec = specs.bars_spec(run2, 4)
        assert [a["state"] for a in spec.arms] == ["ok", state]
        l2 = [b for p in spec.panels for b in p["bars"] if b["arm"] == "l2" and b["source"] == "measured"]
        assert {b["note"] for b in l2} == {specs.STATE_NOTE[state]} and all(b["median"] is None for b in l2)
        timeline = specs.timeline_spec(run2, 4)
        row = next(r for r in timeline.rows if r["unit"] == "l2" and r["source"] == "measured")
        assert row["segments"] == [] and row["note"].startswith(word)
        fig = traces.timeline_figure(timeline)
        assert any(t.startswith(word) for t in texts(fig))
        assert specs.memory_spec(run2, "l2").note.startswith(word)


def test_a_failed_repeat_fails_the_arm_in_the_figure_as_in_the_table(tmp_path):
    run_dir = fabricate_run(tmp_path, tables=(1,), repeat=2)
    status = run_dir / "l1" / "r2" / "status.json"
    text = status.read_text()
    status.write_text(text.replace('"ok": true', '"ok": false').replace('"error": null', '"error": "oom"'))
    run = results.load_run(run_dir)
    spec = specs.bars_spec(run, 1)
    assert spec.arms[0]["note"] == "FAILED: r2: oom"
    l1 = [b for p in spec.panels for b in p["bars"] if b["arm"] == "l1" and b["source"] == "measured"]
    assert all(b["median"] is None for b in l1)
    assert specs.timeline_spec(run, 1).rows[0]["repeat"] == 2          # the timeline shows the failed repeat
    nosleep = next(b for b in spec.panels[0]["bars"] if b["arm"] == "nosleep" and b["source"] == "measured")
    assert nosleep["n"] == 6


def test_seed_units_get_their_own_memory_figure(tmp_path):
    run = results.load_run(fabricate_run(tmp_path, tables=(4, 5), protocol="seed"))
    names = plot.expected_figures(run, [4, 5])
    assert {"memory-l2.png", "memory-l2@online_sleep2_nosleep.svg", "memory-nosleep.png"} <= set(names)
    assert [r["unit"] for r in specs.timeline_spec(run, 5).rows if r["source"] == "measured"] == [
        "l2@online_sleep2_nosleep", "nosleep"]


def test_a_suspect_arm_keeps_its_bars_and_says_so(tmp_path):
    run = results.load_run(fabricate_run(tmp_path, tables=(4,), arm_opts={"l2": {"failed_check": True}}))
    spec = specs.bars_spec(run, 4)
    assert spec.arms[1]["note"] == "SUSPECT: 1 sleep check(s) failed"
    assert all(b["median"] is not None for p in spec.panels for b in p["bars"])
    assert specs.timeline_spec(run, 4).rows[2]["note"].startswith("SUSPECT")
