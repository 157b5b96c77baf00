"""kit.plot on fabricated runs: every figure exists and is a sane size, and the data each figure
draws (its spec) holds every arm's events; failed arms are shown, not dropped."""
import shutil

import matplotlib.image
import pytest

from fabricate import fabricate_run
from kit import plot, scenarios


def sleep_sequence(warmup):
    seq = [("load", "A"), *([("warmup", "A")] if warmup else []), ("sleep", "A"),
           ("load", "B"), *([("warmup", "B")] if warmup else []), ("sleep", "B")]
    for r in (1, 2, 3):
        for m in "AB":
            seq += [("wake", m), ("prompt", m)] + ([] if (r == 3 and m == "B") else [("sleep", m)])
    return seq + [("stop", "A"), ("stop", "B")]


NOSLEEP_SEQUENCE = [(k, m) for r in (1, 2, 3) for m in "AB" for k in ("load", "prompt", "stop")]


def expected_sequence(arm):
    a = scenarios.ARMS[arm]
    return sleep_sequence(a.warmup) if a.sleep_level else NOSLEEP_SEQUENCE


@pytest.fixture(scope="module")
def all_tables(tmp_path_factory):
    run_dir = fabricate_run(tmp_path_factory.mktemp("results"), tables=(1, 2, 3, 4, 5), repeat=2)
    return run_dir, plot.plot_run(run_dir, [1, 2, 3, 4, 5])


def test_every_figure_for_every_table(all_tables):
    run_dir, paths = all_tables
    names = sorted(p.name for p in paths)
    expected = sorted([f"table{n}-{k}.png" for n in range(1, 6) for k in ("timeline", "bars")]
                      + [f"memory-{arm}.png" for arm in scenarios.ARMS])
    assert names == expected == sorted(plot.expected_figures([1, 2, 3, 4, 5]))
    for p in paths:
        assert p.parent == run_dir / "figures" and p.is_file()
        height, width = matplotlib.image.imread(p).shape[:2]
        assert width >= 800 and 300 <= height <= 2000, (p.name, width, height)


def test_png_has_no_version_or_date_and_is_reproducible(all_tables):
    run_dir, paths = all_tables
    before = {p.name: p.read_bytes() for p in paths}
    assert all(b"matplotlib" not in data.lower() for data in before.values())
    again = plot.plot_run(run_dir, [1, 2, 3, 4, 5])
    assert {p.name: p.read_bytes() for p in again} == before


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_timeline_spec_has_every_event_of_each_arm(all_tables, number):
    run_dir, _ = all_tables
    rows = plot.timeline_spec(run_dir, scenarios.TABLES[number].arms)
    assert [r["arm"] for r in rows] == list(scenarios.TABLES[number].arms)
    for row in rows:
        assert row["repeat"] == 1 and row["failed"] is None
        assert [(s["kind"], s["model"]) for s in row["segments"]] == expected_sequence(row["arm"])
        starts = [s["start"] for s in row["segments"]]
        assert starts == sorted(starts) and all(s["duration"] > 0 for s in row["segments"])


def test_bars_spec_switch_and_prompt(all_tables):
    run_dir, _ = all_tables
    spec = plot.bars_spec(run_dir, ("l1", "nosleep"))
    assert spec["failed"] == {}
    for arm in ("l1", "nosleep"):
        for model in "AB":
            for metric in ("switch", "prompt"):
                s = spec[metric][arm][model]
                assert s["n"] == 3 * 2                       # rounds 1..3 x 2 repeats
                assert s["min"] <= s["mean"] <= s["max"]
    # sleep arm: switch = wake (sub-second); no-sleep: switch = load (tens of seconds)
    assert spec["switch"]["l1"]["A"]["max"] < 1 < 30 < spec["switch"]["nosleep"]["A"]["min"]
    assert plot.use_log_scale(spec["switch"]) and not plot.use_log_scale(spec["prompt"])


def test_memory_spec_before_after_per_event(all_tables):
    run_dir, _ = all_tables
    for arm in scenarios.ARMS:
        spec = plot.memory_spec(run_dir, arm)
        assert [(p["kind"], p["model"]) for p in spec["points"]] == expected_sequence(arm)
        assert all(p[k] is not None for p in spec["points"]
                   for k in ("gpu_before", "gpu_after", "rss_before", "rss_after"))
    sleeps = [p for p in plot.memory_spec(run_dir, "l1")["points"] if p["kind"] == "sleep"]
    assert all(p["gpu_after"] < p["gpu_before"] for p in sleeps)


def test_failed_and_missing_arms_are_drawn_not_dropped(tmp_path):
    run_dir = fabricate_run(tmp_path, tables=(2, 4), fail={"l1-fp8": 5})
    shutil.rmtree(run_dir / "l2")                          # an arm that never ran at all
    paths = plot.plot_run(run_dir, [2, 4])
    assert sorted(p.name for p in paths) == sorted(plot.expected_figures([2, 4]))

    rows = {r["arm"]: r for r in plot.timeline_spec(run_dir, ("l1", "l1-fp8", "l2"))}
    assert rows["l1"]["failed"] is None
    assert rows["l1-fp8"]["failed"] == "fabricated failure"
    assert [s["kind"] for s in rows["l1-fp8"]["segments"]] == ["load", "warmup", "sleep", "load", "warmup"]
    assert rows["l1-fp8"]["segments"][-1]["ok"] is False
    assert rows["l2"]["failed"] == "no results (r1 missing)" and rows["l2"]["segments"] == []

    bars = plot.bars_spec(run_dir, ("l1", "l1-fp8", "l2"))
    assert set(bars["failed"]) == {"l1-fp8", "l2"}
    assert bars["switch"]["l2"] == {"A": None, "B": None}
    assert plot.memory_spec(run_dir, "l2")["failed"] == "no results (r1 missing)"


def test_a_failed_repeat_is_left_out_of_the_bars_whole(tmp_path):
    run_dir = fabricate_run(tmp_path, tables=(1,), repeat=2)
    status = run_dir / "l1" / "r2" / "status.json"
    status.write_text(status.read_text().replace('"ok": true', '"ok": false').replace('"error": null', '"error": "oom"'))
    spec = plot.bars_spec(run_dir, ("l1", "nosleep"))
    assert spec["failed"] == {"l1": "oom"}
    assert spec["switch"]["l1"]["A"]["n"] == 3 and spec["switch"]["nosleep"]["A"]["n"] == 6
    assert plot.draw_bars(spec, "t", tmp_path / "bars.png").is_file()
