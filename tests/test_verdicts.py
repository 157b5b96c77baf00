"""Verdicts that follow the data: a ratio of loads, restarts or totals only where every load behind it was in
one compile-cache state (read from the load events' breakdown); the 80-column terminal views; the summary
sentence of each table. Unit tier (in-process, fabricated runs and the committed references)."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from kit import results
from kit.cli import main
from kit.results import compare as comparing
from kit.results import render, summary
from kit.results.metrics import CacheCounts
from test_results import make_run, row, table_of

REPO = Path(__file__).resolve().parent.parent
REFERENCES = REPO / "results" / "reference"
LOADED = {("load", "A"), ("load", "B"), ("total", None)}


def test_loads_in_different_cache_states_have_no_ratio_and_say_why(tmp_path):
    t = table_of(make_run(tmp_path, (2,), arm_opts={"l1": {"cache": "hit"}, "l1-fp8": {"cache": "miss"}}), 2)
    assert row(t, "load", "A").ratio is None and row(t, "total", None).ratio is None
    assert row(t, "load", "A").reason == "not comparable: l1-fp8 compiled 1 of 1 loads, l1 0 of 1"
    assert row(t, "total", None).reason == "not comparable: l1-fp8 compiled 2 of 2 loads, l1 0 of 2"
    assert row(t, "total", None).cache == {"l1-fp8": CacheCounts(n=2, compiled=2, cached=0, unknown=0),
                                              "l1": CacheCounts(n=2, compiled=0, cached=2, unknown=0)}
    for metric in ("switch", "prompt", "sleep"):          # no load behind them: comparable
        assert row(t, metric, "A").ratio is not None and row(t, metric, "A").cache_state is None
    doc = json.loads(render.text([t], "json"))["tables"][0]
    total = next(r for r in doc["rows"] if r["metric"] == "total")
    assert total["ratio"] is None and total["reason"].startswith("not comparable: l1-fp8 compiled 2 of 2")
    text = render.text([t])
    line = next(x for x in text.splitlines() if x.startswith("total "))
    assert "not comparable" in line
    assert "- total: not comparable: l1-fp8 compiled 2 of 2 loads, l1 0 of 2" in text
    assert [s.loads.compiled for s in t.arms] == [0, 2]
    assert "failed; loads compiled 2 of 2" in text.replace("\n  ", " ")


@pytest.mark.parametrize("state", ["hit", "miss"])
def test_loads_all_in_one_cache_state_are_comparable(tmp_path, state):
    t = table_of(make_run(tmp_path, (2,), arm_opts={"l1": {"cache": state}, "l1-fp8": {"cache": state}}), 2)
    for key in LOADED:
        r = row(t, *key)
        assert r.ratio is not None and r.cache_state == state and r.reason is None
    text = render.text([t])
    assert "not comparable" not in text.replace("otherwise 'not comparable'", "") and "?" not in text


def test_a_restart_median_over_compiled_and_cached_loads_is_not_comparable(tmp_path):
    """--cache cold per job: the no-sleep arm's round 1 compiles, rounds 2-3 do not; its restarts are no one thing."""
    first_round_compiles = ["miss", "miss", "hit", "hit", "hit", "hit"]      # load A, load B per round
    t = table_of(make_run(tmp_path, (1,), arm_opts={"l1": {"cache": "hit"}, "nosleep": {"cache": first_round_compiles}}), 1)
    assert row(t, "switch", "A").ratio is None
    assert row(t, "switch", "A").reason == "not comparable: nosleep compiled 1 of 3 loads"
    assert row(t, "total", None).reason == "not comparable: nosleep compiled 2 of 6 loads, l1 0 of 2"
    assert row(t, "prompt", "A").ratio == 5.0 and row(t, "stop", "A").ratio == 0.5
    all_cold = table_of(make_run(tmp_path / "cold", (1,), arm_opts={"l1": {"cache": "miss"},
                                                                     "nosleep": {"cache": "miss"}}), 1)
    assert row(all_cold, "switch", "A").ratio == 155.0 and row(all_cold, "switch", "A").cache_state == "miss"


def test_unknown_cache_state_keeps_the_ratio_and_marks_it(tmp_path):
    old = table_of(make_run(tmp_path / "old", (1,)), 1)                     # no breakdown: events before schema 3
    total = row(old, "total", None)
    assert total.ratio == pytest.approx(5.795851) and total.cache_state == "unknown"
    assert total.reason == "cache state unknown for nosleep 6 of 6 loads, l1 2 of 2"
    text = render.text([old])
    assert next(x for x in text.splitlines() if x.startswith("total ")).split()[4] == "5.80?"
    assert "?: compile cache state unknown (l1 2 of 2, nosleep 6 of 6 loads)" in text.replace("\n  ", " ")
    assert row(old, "prompt", "A").cache_state is None and "?" not in fmt_line(text, "prompt ")
    half = table_of(make_run(tmp_path / "half", (1,), arm_opts={"l1": {"cache": "unknown"},
                                                                  "nosleep": {"cache": "hit"}}), 1)
    assert row(half, "total", None).cache_state == "unknown" and row(half, "total", None).ratio is not None
    assert row(half, "switch", "A").cache_state == "hit"             # the wake side has no load
    mixed = table_of(make_run(tmp_path / "mixed", (1,), arm_opts={"l1": {"cache": ["unknown", "miss"]},
                                                                    "nosleep": {"cache": "hit"}}), 1)
    assert row(mixed, "total", None).cache_state == "mixed"        # what is known already differs


def fmt_line(text, start):
    return next(x for x in text.splitlines() if x.startswith(start))


# -- compare -------------------------------------------------------------------------------------------
def compared(tmp_path, a_opts, b_opts, number=1):
    a = results.load_run(make_run(tmp_path / "a", (number,), arm_opts=a_opts))
    b = results.load_run(make_run(tmp_path / "b", (number,), arm_opts=b_opts))
    return comparing.compare(results.build_table(a, number), results.build_table(b, number), number)


def cmp_row(cmp, metric, model):
    return next(r for r in cmp.rows if r.metric == metric and r.model == model)


def test_compare_withholds_ratios_of_loads_in_different_cache_states(tmp_path):
    cmp = compared(tmp_path, {"l1": {"cache": "hit"}, "nosleep": {"cache": "hit"}},
                   {"l1": {"cache": "miss"}, "nosleep": {"cache": "hit"}})
    load = cmp_row(cmp, "load", "A").arms
    assert load["l1"].ratio is None and load["l1"].reason == "not comparable: a compiled 0 of 1 loads, b 1 of 1"
    assert load["nosleep"].ratio == 1.0 and load["nosleep"].cache_state == "hit"
    assert cmp_row(cmp, "total", None).arms["l1"].ratio is None
    assert cmp_row(cmp, "switch", "A").arms["l1"].ratio == 1.0          # a wake: no load behind it
    assert cmp_row(cmp, "switch", "A").arms["nosleep"].ratio == 1.0     # restarts, all cached on both sides
    assert cmp.b.arms["l1"].loads == CacheCounts(n=2, compiled=2, cached=0, unknown=0)
    text = comparing.compare_text(cmp, width=None)
    assert ("- compile cache found in the load events: a: l1 compiled 0 of 2 loads, nosleep compiled 0 of 6 loads; "
            "b: l1 compiled 2 of 2 loads, nosleep compiled 0 of 6 loads") in text
    assert "- l1 total: not comparable: a compiled 0 of 2 loads, b 2 of 2" in text
    assert "not comparable" in fmt_line(text, "total ")
    assert json.loads(comparing.compare_text(cmp, "json"))["rows"][-1]["arms"]["l1"]["reason"].startswith(
        "not comparable")


def test_compare_of_runs_whose_loads_agree_keeps_every_ratio(tmp_path):
    cmp = compared(tmp_path, {"l1": {"cache": "miss"}, "nosleep": {"cache": "miss"}},
                   {"l1": {"cache": "miss"}, "nosleep": {"cache": "miss"}})
    assert all(c.ratio is not None for key in LOADED for c in cmp_row(cmp, *key).arms.values())
    assert "not comparable" not in comparing.compare_text(cmp)
    unknown = compared(tmp_path / "u", {}, {"l1": {"cache": "hit"}, "nosleep": {"cache": "hit"}})
    total = cmp_row(unknown, "total", None).arms["l1"]
    assert total.ratio is not None and total.cache_state == "unknown"
    text = comparing.compare_text(unknown)
    assert "a: l1 2 loads, cache unknown" in text.replace("\n  ", " ") and "?" in fmt_line(text, "total ")


# -- 80 columns ----------------------------------------------------------------------------------------
def reference_runs():
    return sorted(p.name for p in REFERENCES.iterdir() if (p / "manifest.json").is_file())


def kit(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_table_and_compare_of_every_reference_fit_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    runs = reference_runs()
    assert len(runs) >= 5
    outputs = [kit(capsys, "table", run, "--results-dir", REFERENCES) for run in runs]
    study = [run for run in runs if "sweep" not in json.loads((REFERENCES / run / "manifest.json").read_text())]
    assert len(study) < len(runs)                               # a sweep's guide shows above; compare has no guide
    outputs += [kit(capsys, "compare", study[0], other, "--results-dir", REFERENCES) for other in study[1:]]
    outputs += [kit(capsys, "compare", run, "published", "--results-dir", REFERENCES) for run in study]
    for out in outputs:
        assert max(len(line) for line in out.splitlines()) <= 80, max(out.splitlines(), key=len)
    table = outputs[runs.index(study[0])]
    assert "metric " in table and " model " in table and "×" in table and "\nIn short:\n" in table
    wide = kit(capsys, "table", study[0], "--results-dir", REFERENCES, "--wide")
    assert max(len(line) for line in wide.splitlines()) > 80 and "min..max" in wide
    monkeypatch.setenv("COLUMNS", "200")
    roomy = kit(capsys, "table", study[0], "--results-dir", REFERENCES, "--table", "1")
    assert "A100 l1" in roomy                                   # room for the published medians


def test_narrow_grid_drops_published_medians_then_spread(tmp_path):
    t = table_of(make_run(tmp_path, (1,), repeat=2), 1)
    roomy, narrow = render.table_text(t, width=200), render.table_text(t, width=80)
    assert "A100 l1" in roomy and "spread" in roomy
    header = fmt_line(narrow, "metric ")
    assert "A100 l1" not in header and "A100 ×" in header and "nosleep/l1 ×" in header and " model " in header
    assert max(len(line) for line in narrow.splitlines()) <= 80


# -- the summary sentence --------------------------------------------------------------------------------
def test_summary_sentence_of_table1(tmp_path):
    t = table_of(make_run(tmp_path, (1,), arm_opts={"l1": {"cache": "hit"}, "nosleep": {"cache": "hit"}}), 1)
    end = summary.factor(row(t, "total", None).ratio)
    assert summary.sentence(t) == (f"Table 1: a level-1 wake switched 155× (A) / 47× (B) faster than a restart; "
                                   f"end to end {end}× faster (published A100: 153× / 71×, 2.9×)")
    text = summary.text([t], 80)
    assert text.startswith("In short:\nTable 1: a level-1 wake") and max(map(len, text.splitlines())) <= 80


def test_summary_says_not_comparable_and_unknown(tmp_path):
    t = table_of(make_run(tmp_path, (1,), arm_opts={"l1": {"cache": "hit"},
                                                     "nosleep": {"cache": ["miss", "miss", "hit", "hit", "hit", "hit"]}}), 1)
    said = summary.sentence(t)
    assert "the switch not comparable: nosleep compiled 1 of 3 loads" in said
    assert "end to end not comparable: nosleep compiled 2 of 6 loads, l1 0 of 2" in said and "155×" not in said
    old = summary.sentence(table_of(make_run(tmp_path / "old", (1,)), 1))
    assert "155× (A)" in old and old.endswith("; compile cache unknown for the switch and end to end "
                                              "(published A100: 153× / 71×, 2.9×)")


def test_summary_words_follow_the_direction_and_missing_arms(tmp_path):
    t = table_of(make_run(tmp_path, (4,), arm_opts={"l1": {"cache": "hit"}, "l2": {"cache": "hit"}}), 4)
    assert summary.sentence(t).startswith("Table 4: a level-1 wake switched ")
    slow = replace(row(t, "switch", "A"), ratio=0.5)
    fast = replace(row(t, "switch", "B"), ratio=4.0)
    t = replace(t, rows=(slow, fast, row(t, "total", None)))
    assert "switched 2.0× slower (A) / 4.0× faster (B) than a level-2 wake" in summary.sentence(t)
    only_l1 = table_of(make_run(tmp_path / "x", (4,), arm_opts={"l2": {"skip": True}}), 4)
    assert summary.sentence(only_l1) == "Table 4: no ratios (l2 FAILED)"
