"""kit.results: fabricated runs -> exact table values, states, rendering, compare. Unit tier (in-process)."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fabricate import ENV, GPU_ASLEEP, GPU_SERVER, RSS_SERVER, WEIGHTS_MIB, fabricate_run
from kit import bundle, manifest, results
from kit.errors import BadRecord, NotFound
from kit.results import compare as comparing
from kit.results import published, render
from kit.results.metrics import Cell
from kit.results.tables import FIXED_NOTE, FREE_NOTE, SkippedCheck, run_facts
from kit.workload import events, scenarios

REPO = Path(__file__).resolve().parent.parent
# exact durations per "<kind> <model>", consumed in the order the arm's steps meet them
SLEEP_TIMES = {"load A": [10.0], "warmup A": [1.0], "load B": [20.0], "warmup B": [2.0],
               "sleep A": [0.5, 0.1, 0.2, 0.3], "sleep B": [0.6, 0.4, 0.5],
               "wake A": [0.1, 0.3, 0.2], "wake B": [1.0, 1.2, 1.1],
               "prompt A": [0.4, 0.6, 0.5], "prompt B": [0.8, 0.9, 1.0], "stop A": [2.0], "stop B": [2.0]}
NOSLEEP_TIMES = {"load A": [30.0, 32.0, 31.0], "load B": [50.0, 54.0, 52.0], "prompt A": [3.0, 2.0, 2.5],
                 "prompt B": [6.0, 5.0, 5.5], "stop A": [1.0, 1.0, 1.0], "stop B": [1.0, 1.0, 1.0]}
L2_PARTS = {"wake_up": 0.2, "reload_weights": 0.6, "reset_prefix_cache": 0.05, "warmup": 0.15}


def make_run(results_dir, tables, repeat=1, scale=None, **options):
    """Exact times for every arm; `scale` per repeat (default: repeat k runs k x slower)."""
    scale = scale or [float(k) for k in range(1, repeat + 1)]
    arm_opts = options.pop("arm_opts", {})
    opts = {a: {"times": NOSLEEP_TIMES if a == "nosleep" else SLEEP_TIMES, "scale": scale} | arm_opts.get(a, {})
            for a in scenarios.ARMS}
    return fabricate_run(results_dir, tables, repeat=repeat, arm_opts=opts, **options)


def table_of(run_dir, number):
    return results.build_table(results.load_run(run_dir), number)


def row(table, metric, model):
    found = [r for r in table.rows if r.metric == metric and r.model == model]
    assert len(found) == 1, (metric, model, [(r.metric, r.model) for r in table.rows])
    return found[0]


def mem(table, metric, model):
    return next(r for r in table.memory if r.metric == metric and r.model == model)


def cell(mn, med, mx, n, cv=None):
    return Cell(mn, med, mx, n, cv)


def no_cv(c):
    return replace(c, cv=None) if c else c


# -- values ------------------------------------------------------------------------------------------
def test_table1_exact_values(tmp_path):
    t = table_of(make_run(tmp_path, (1,)), 1)
    assert [s.state for s in t.arms] == ["ok", "ok"]
    sw = row(t, "switch", "A")
    assert no_cv(sw.arms["l1"]) == cell(0.1, 0.2, 0.3, 3) and no_cv(sw.arms["nosleep"]) == cell(30.0, 31.0, 32.0, 3)
    assert sw.ratio == 155.0
    assert row(t, "load", "A").arms["l1"] == cell(10.0, 10.0, 10.0, 1)
    assert row(t, "load", "A").ratio == 3.1
    assert row(t, "warmup", "B").arms == {"l1": cell(2.0, 2.0, 2.0, 1), "nosleep": None}
    assert no_cv(row(t, "prompt", "B").arms["nosleep"]) == cell(5.0, 5.5, 6.0, 3)
    assert row(t, "prompt", "B").ratio == round(5.5 / 0.9, 6)
    assert no_cv(row(t, "ttft", "A").arms["l1"]) == cell(0.04, 0.05, 0.06, 3)
    assert no_cv(row(t, "sleep", "B").arms["l1"]) == cell(0.4, 0.45, 0.5, 2)   # the last sleep is skipped
    assert row(t, "sleep_setup", "A").arms["l1"] == cell(0.5, 0.5, 0.5, 1)
    assert not any(r.metric.startswith("part:") for r in t.rows)            # level 1: no part rows


def test_repeats_pool_rounds_and_repeats_with_spread(tmp_path):
    t = table_of(make_run(tmp_path, (1,), repeat=2), 1)      # repeat 2 = durations x 2
    sw = row(t, "switch", "A").arms["l1"]
    assert no_cv(sw) == cell(0.1, 0.25, 0.6, 6)
    values = [0.1, 0.3, 0.2, 0.2, 0.6, 0.4]
    mean = sum(values) / 6
    assert sw.cv == round((sum((v - mean) ** 2 for v in values) / 5) ** 0.5 / mean, 6)
    assert row(t, "load", "B").arms["l1"] == cell(20.0, 30.0, 40.0, 2, cv=round(14.142136 / 30, 6))
    assert no_cv(row(t, "switch", "B").arms["nosleep"]) == cell(50.0, 77.0, 108.0, 6)
    assert row(t, "switch", "A").overlap is False          # 0.1..0.6 vs 30..64
    assert row(t, "stop", "A").overlap is True             # 2..4 vs 1..2


def test_memory_columns(tmp_path):
    t = table_of(make_run(tmp_path, (4,)), 4)
    freed = GPU_SERVER - GPU_ASLEEP
    assert no_cv(mem(t, "gpu_freed_by_sleep", "A").arms["l1"]) == cell(freed, freed, freed, 4)
    assert no_cv(mem(t, "gpu_taken_by_wake", "B").arms["l2"]) == cell(freed, freed, freed, 3)
    grew = WEIGHTS_MIB["A"] + 700
    assert mem(t, "rss_first_sleep", "A").arms == {"l1": cell(grew, grew, grew, 1), "l2": cell(10, 10, 10, 1)}
    assert mem(t, "rss_peak", "A").arms["l1"] == cell(RSS_SERVER + grew, RSS_SERVER + grew, RSS_SERVER + grew, 1)
    # what the engine backed up (its log line, 2 decimals of GiB), moved back by each level-1 wake
    gb = round(WEIGHTS_MIB["A"] / 1024, 2) * 1024 * 2**20 / 1e9
    assert no_cv(mem(t, "wake_gbps", "A").arms["l1"]) == cell(round(gb / 0.3, 6), round(gb / 0.2, 6),
                                                                 round(gb / 0.1, 6), 3)
    assert mem(t, "wake_gbps", "A").arms["l2"] is None                        # level 2 reloads from disk
    assert mem(t, "wake_vs_h2d", "A").arms["l1"].median == round(gb / 0.2 / 25.0, 6)
    assert mem(t, "h2d_gbps", "B").arms["l2"] == cell(25.0, 25.0, 25.0, 1)


def test_h2d_of_each_arm_is_its_own_gpus(tmp_path):
    """Arms on different GPUs are held against the bandwidth of their own GPU (the manifest's "h2d")."""
    run_dir = make_run(tmp_path, (1,), arm_opts={"l1": {"env": dict(ENV, h2d_gbps=None)},
                                                 "nosleep": {"env": dict(ENV, h2d_gbps=None)}})
    m = json.loads((run_dir / "manifest.json").read_text())
    m["h2d"] = {"gpu 0": 50.0, "gpu 1": 40.0}
    m["jobs"] = [dict(j, lane="gpu 1" if j["unit"] == "l1" else "gpu 0") for j in m["jobs"]]
    (run_dir / "manifest.json").write_text(json.dumps(m))
    t = table_of(run_dir, 1)
    assert mem(t, "h2d_gbps", "A").arms["l1"] == cell(40.0, 40.0, 40.0, 1)


def test_an_arm_resumed_on_another_gpu_by_an_older_kit_has_no_host_to_gpu_number():
    """h100-vllm0.24.0-twins-warm (manifest schema 2): nosleep, l2, l1-nowarm and l1-fp8 ran on one H100, whose
    first job measured 55.31 GB/s for lane "gpu 0"; the resume ran l1 on another H100 under that lane."""
    run = results.load_run(Path(__file__).parents[1] / "results" / "reference" / "h100-vllm0.24.0-twins-warm")
    assert run.manifest["schema"] == 2 and run.manifest["h2d"] == {"gpu 0": 55.31}
    assert run.h2d == {"vm/GPU-0241ab4e-e6a9-e448-4b7e-ba06ae509255": 55.31}
    t = results.build_table(run, 1)
    assert mem(t, "h2d_gbps", "A").arms["nosleep"].median == 55.31 and mem(t, "h2d_gbps", "A").arms["l1"] is None
    assert mem(t, "wake_gbps", "A").arms["l1"] is not None and not [r for r in t.memory if r.metric == "wake_vs_h2d"]
    assert any(n.startswith("no host->GPU GB/s for l1: none was measured on the GPU it ran on") for n in t.notes)
    assert mem(results.build_table(run, 4), "h2d_gbps", "A").arms["l2"].median == 55.31
    assert not any("no host->GPU" in n for n in results.build_table(run, 5).notes)     # l2 and nosleep: one GPU


def test_h2d_unknown_leaves_the_rows_out(tmp_path):
    no_h2d = {"env": dict(ENV, h2d_gbps=None)}
    run_dir = make_run(tmp_path, (1,), arm_opts={"l1": no_h2d, "nosleep": no_h2d})
    m = json.loads((run_dir / "manifest.json").read_text())
    m["h2d"], m["environment"] = {}, dict(ENV, h2d_gbps=None)
    (run_dir / "manifest.json").write_text(json.dumps(m))
    t = table_of(run_dir, 1)
    assert not [r for r in t.memory if r.metric in ("h2d_gbps", "wake_vs_h2d")]
    assert mem(t, "wake_gbps", "A").arms["l1"] is not None


def test_level2_switch_parts(tmp_path):
    t = table_of(make_run(tmp_path, (4,)), 4)
    assert no_cv(row(t, "switch", "B").arms["l2"]) == cell(1.0, 1.1, 1.2, 3)
    assert no_cv(row(t, "part:reload_weights", "B").arms["l2"]) == cell(0.6, 0.66, 0.72, 3)
    assert no_cv(row(t, "part:wake_up", "A").arms["l1"]) == cell(0.1, 0.2, 0.3, 3)
    parts = [r.metric for r in t.rows if r.metric.startswith("part:") and r.model == "A"]
    assert parts == ["part:wake_up", "part:reload_weights", "part:reset_prefix_cache", "part:warmup"]


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_rows_present_for_each_table(tmp_path, number):
    t = table_of(make_run(tmp_path, (number,)), number)
    test, control = scenarios.TABLES[number].arms
    assert [s.arm for s in t.arms] == [test, control]
    for metric in ("load", "switch", "prompt", "ttft", "stop"):
        for model in "AB":
            assert any(row(t, metric, model).arms.values())
    assert row(t, "total", None).ratio is not None
    text = render.markdown(t)
    assert f"{control}/{test}" in text and "wake / switch" in text


def test_nowarm_arm_has_no_warmup_numbers(tmp_path):
    t = table_of(make_run(tmp_path, (3,)), 3)
    assert row(t, "warmup", "A").arms == {"l1": cell(1.0, 1.0, 1.0, 1), "l1-nowarm": None}
    assert row(t, "warmup", "A").published[0].arms["l1-nowarm"] is None


# -- states and checks ------------------------------------------------------------------------------
def test_failed_arm_shows_failed_and_no_numbers(tmp_path):
    t = table_of(make_run(tmp_path, (1,), arm_opts={"nosleep": {"status_ok": False}}), 1)
    ctl = t.arms[1]
    assert ctl.state == "failed" and ctl.errors == ("r1: server A never became ready (exit 1)",)
    assert all(r.arms["nosleep"] is None and r.ratio is None for r in t.rows)
    text = render.text([t], "plain")
    assert "FAILED - r1: server A never became ready (exit 1)" in text
    assert "31.000" not in text and "5.500" not in text           # the failed arm's medians are not shown
    assert row(t, "switch", "A").arms["l1"].median == 0.2    # the other arm keeps its numbers


def test_arm_outside_the_run_is_not_run_and_missing_events_fail(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    t4 = table_of(run_dir, 4)                                     # l2 was not part of this run
    assert t4.arms[1].state == "not run"
    assert "not run (not part of this run)" in render.text([t4], width=120)
    assert "FAILED" not in render.text([t4])
    (run_dir / "l1" / "r1" / "events.jsonl").unlink()
    t1 = table_of(run_dir, 1)
    assert t1.arms[0].state == "failed" and t1.arms[0].errors == ("r1: no events.jsonl",)


def test_interrupted_run_shows_unfinished_not_failed(tmp_path):
    run_dir = make_run(tmp_path, (1,), complete=False, arm_opts={"nosleep": {"skip": True}})
    t = table_of(run_dir, 1)
    assert t.arms[1].state == "unfinished" and t.arms[1].errors == ("r1: not run yet",)
    text = render.text([t])
    assert "(incomplete)" in text and "UNFINISHED" in text and "pending" in text and "FAILED" not in text


def test_failed_event_fails_the_repeat(tmp_path):
    t = table_of(make_run(tmp_path, (1,), arm_opts={"l1": {"fail_at": 7}}), 1)
    assert t.arms[0].state == "failed"
    assert t.arms[0].errors == ("r1: fabricated failure",)


def test_failed_check_makes_arm_suspect(tmp_path):
    t = table_of(make_run(tmp_path, (4,), arm_opts={"l2": {"failed_check": True}}), 4)
    l2 = t.arms[1]
    assert l2.state == "suspect"
    assert [(c.seq, c.check) for c in l2.failed_checks] == [(3, "rss_level2")]   # load, warm-up, sleep
    assert row(t, "switch", "A").arms["l2"].median is not None     # numbers kept, flagged
    text = render.markdown(t)
    assert "l2 SUSPECT median" in text and "SUSPECT l2 r1 seq 3: sleep A round 0 - check rss_level2 failed" in text


def test_skipped_checks_are_counted_with_their_reason(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    path = run_dir / "l1" / "r1" / "events.jsonl"
    evs = [json.loads(line) for line in path.read_text().splitlines()]
    for e in evs:
        for c in e.get("checks") or []:
            if c["check"] == "gpu_dropped":
                c.update(ok=None, detail="skipped: no GPU memory reading here")
    path.write_text("".join(json.dumps(e) + "\n" for e in evs))
    l1 = table_of(run_dir, 1).arms[0]
    assert l1.state == "ok" and l1.skipped_checks == {"gpu_dropped": SkippedCheck(7, "skipped: no GPU memory reading here")}
    assert l1.checks_passed == 9
    assert "9 checks passed, 0 failed, 7 gpu_dropped skipped (no GPU memory reading here)" in render.text(
        [table_of(run_dir, 1)], "plain")


def test_seed_protocol_serves_table5_from_its_own_l2_variant(tmp_path):
    run = results.load_run(fabricate_run(tmp_path, (4, 5), protocol="seed"))
    assert set(run.units) == {"l1", "l2", "nosleep", "l2@online_sleep2_nosleep"}
    t4, t5 = results.build_table(run, 4), results.build_table(run, 5)
    assert [s.unit for s in t4.arms] == ["l1", "l2"]
    assert [s.unit for s in t5.arms] == ["l2@online_sleep2_nosleep", "nosleep"]
    assert no_cv(row(t5, "sleep_setup", "A").arms["l2"]).n == 2    # A slept twice before round 1
    assert not [r for r in t5.rows if r.metric == "sleep_setup" and r.model == "B"]   # B never
    assert no_cv(row(t4, "sleep_setup", "B").arms["l2"]).n == 1


# -- published, header, notes ------------------------------------------------------------------------
def test_published_numbers_beside_measured(tmp_path):
    t = table_of(make_run(tmp_path, (1,)), 1)
    assert [(r.gpu, r.vllm, r.figure) for r in t.published] == [
        ("A100", "0.11.0", "plotly-sleep-levels-comparison"), ("A4000", "0.11.0", "plotly-sleep-mode-a4000")]
    pub = row(t, "switch", "A").published
    assert no_cv(pub[0].arms["l1"]) == cell(0.25, 0.25, 0.28, 3)
    assert no_cv(pub[0].arms["nosleep"]) == cell(37.21, 38.15, 38.53, 3)
    assert pub[0].ratio == round(38.15 / 0.25, 6)
    assert row(t, "total", None).published[0].arms["nosleep"].median == 318.19
    text = render.markdown(t)
    assert "pub[1] l1 (A100, vLLM 0.11.0)" in text and "pub[2] nosleep (A4000, vLLM 0.11.0)" in text
    assert "the post's text prints l1 112.6s, nosleep 357.1s" in text


def test_header_names_gpu_versions_models_and_notes(tmp_path):
    run_dir = make_run(tmp_path, (2,), fixed_output=True)
    m = json.loads((run_dir / "manifest.json").read_text())
    m["models"]["A"]["twin"] = "qwen3-0.6b"
    (run_dir / "manifest.json").write_text(json.dumps(m))
    t = table_of(run_dir, 2)
    assert t.run.gpu == "NVIDIA H100 80GB HBM3" and t.run.vllm == "0.11.0"
    text = render.text([t], "plain")
    assert "GPU: NVIDIA H100 80GB HBM3 | vLLM 0.11.0 | torch 2.8.0 | CUDA 12.8 | driver 570.00" in text
    assert "A = Qwen/Qwen3-0.6B (twin: qwen3-0.6b)" in text
    assert FIXED_NOTE in text
    assert FREE_NOTE in table_of(make_run(tmp_path / "x", (2,)), 2).notes


# -- rendering ---------------------------------------------------------------------------------------
def test_terminal_view_fits_its_width_with_headings_in_table_order(tmp_path):
    run = results.load_run(make_run(tmp_path, (4, 1, 5, 2, 3), repeat=2))
    text = render.text([results.build_table(run, n) for n in sorted(run.tables)])
    assert render.WIDTH == 80 and max(len(line) for line in text.splitlines()) <= render.WIDTH
    headings = [line for line in text.splitlines() if line.startswith("Table ")]
    assert headings == [f"Table {n}: {scenarios.TABLES[n].title}" for n in (1, 2, 3, 4, 5)]
    wide = render.text([results.build_table(run, 1)], wide=True)
    assert max(len(line) for line in wide.splitlines()) > 120 and "min..max" in wide
    roomy = render.text([results.build_table(run, n) for n in sorted(run.tables)], width=120)
    assert max(len(line) for line in roomy.splitlines()) <= 120
    grid_headers = [line for line in roomy.splitlines() if line.startswith("metric ")]
    assert len(grid_headers) == 5 and all("min..max" not in h and "spread" in h for h in grid_headers)


def test_render_wrap_breaks_after_a_lists_commas_and_never_inside_a_path_or_a_name():
    line = ("command: kit sweep --models qwen3-0.6b,qwen3-1.7b,qwen3-4b,qwen3-8b "
            "--results-dir /srv/kit-results/sweeps-of-the-week/2026-11-29 --levels 1,2")
    assert render.wrap(line, 40, rest="    ").splitlines() == [
        "command: kit sweep --models qwen3-0.6b,",
        "    qwen3-1.7b,qwen3-4b,qwen3-8b",
        "    --results-dir",
        "    /srv/kit-results/sweeps-of-the-week/2026-11-29",         # longer than 40: whole, not cut
        "    --levels 1,2"]
    assert render.wrap("a-hyphenated-run-id-longer-than-the-width, then words", 30, first="- ").splitlines() == [
        "- a-hyphenated-run-id-longer-than-the-width,", "  then words"]
    assert render.wrap("  fits,as it is ", 16) == "  fits,as it is "      # a line that fits: untouched
    assert render.bullets(["one,two three"], 10) == "- one,two\n  three"


def test_json_of_several_tables_is_one_document(tmp_path):
    run = results.load_run(make_run(tmp_path, (1, 4)))
    tables = [results.build_table(run, n) for n in (1, 4)]
    doc = json.loads(render.text(tables, "json"))
    assert doc["schema"] == 1 and [t["table"] for t in doc["tables"]] == [1, 4]
    assert doc["tables"] == [t.to_json() for t in tables]


def test_render_is_deterministic(tmp_path):
    a = table_of(make_run(tmp_path / "a", (4,), repeat=2), 4)
    b = table_of(make_run(tmp_path / "b", (4,), repeat=2), 4)
    for fmt in render.FORMATS:
        assert render.text([a], fmt).encode() == render.text([b], fmt).encode()
    with pytest.raises(ValueError):
        render.text([a], "html")


def test_markdown_is_the_wide_view(tmp_path):
    t = table_of(make_run(tmp_path, (1,)), 1)
    md = render.markdown(t)
    assert md.startswith("# Table 1: Sleep mode (L1) vs no sleep mode\n\n- run 20250101-000000-t1")
    line = next(x for x in md.splitlines() if x.startswith("| wake / switch") and "| A " in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:8] == ["0.200", "0.100..0.300", "3", "31.000", "30.000..32.000", "3"]


def test_write_tables_writes_md_and_json_and_viewing_writes_nothing(tmp_path):
    run_dir = make_run(tmp_path, (1, 4))
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    run = results.load_run(run_dir)
    render.text([results.build_table(run, n) for n in (1, 4)])
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    paths = results.write_tables(run, [1, 4])
    assert [p.name for p in paths] == ["table1.md", "table1.json", "table4.md", "table4.json", "loads.md", "loads.json"]
    assert json.loads(paths[1].read_text())["table"] == 1
    assert [p.read_bytes() for p in results.write_tables(results.load_run(run_dir))] == [p.read_bytes() for p in paths]


# -- records and versions ----------------------------------------------------------------------------
def test_malformed_events_name_file_and_line(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    path = run_dir / "nosleep" / "r1" / "events.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"kind": "stop"', '"kind": "nap"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadRecord, match=rf"{path}:3: unknown event kind 'nap'"):
        results.load_run(run_dir)
    path.write_text("{not json\n")
    with pytest.raises(BadRecord, match=rf"{path}:1: not JSON"):
        results.load_run(run_dir)


def test_newer_schemas_are_refused_by_name(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    path = run_dir / "l1" / "r1" / "events.jsonl"
    first = json.loads(path.read_text().splitlines()[0])
    assert first["schema"] == events.SCHEMA
    path.write_text(json.dumps(dict(first, schema=events.SCHEMA + 1)) + "\n")
    with pytest.raises(BadRecord, match=rf"events.jsonl:1: events schema {events.SCHEMA + 1} is newer"):
        results.load_run(run_dir)
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["schema"] == manifest.SCHEMA
    (run_dir / "manifest.json").write_text(json.dumps(dict(m, schema=manifest.SCHEMA + 1)))
    with pytest.raises(BadRecord, match=f"manifest schema {manifest.SCHEMA + 1} is newer than this kit reads"):
        results.load_run(run_dir)


def test_schema_1_records_still_read(tmp_path):
    """The committed reference runs were written by kit 0.1.0 (no schema keys, options flat)."""
    ref = REPO / "results" / "reference" / "h100-vllm0.24.0-twins"
    run = results.load_run(ref)
    assert run.options.runtime == "local" and run.options.cache == "shared" and run.options.fixed_output
    assert set(run.units) == {"l1", "nosleep", "l1-fp8", "l1-nowarm", "l2"}
    assert results.build_table(run, 1).arms[0].checks_passed == 16


def test_most_jobs_at_once_comes_from_the_start_and_end_stamps():
    from kit.results.tables import most_at_once
    job = lambda start, end: {"started": f"2026-01-01T00:{start:02d}:00Z", "ended": f"2026-01-01T00:{end:02d}:00Z"}
    assert most_at_once([job(0, 5), job(5, 9), job(9, 12)]) == 1               # back to back: serial
    assert most_at_once([job(0, 5), job(1, 9), job(2, 3), job(6, 7)]) == 3
    assert most_at_once([job(0, 5), {"started": "2026-01-01T00:01:00Z", "ended": None}]) == 1   # unfinished
    assert most_at_once([]) == 0


def test_a_run_whose_jobs_moved_to_another_gpu_says_so(tmp_path):
    """A resume on another machine: each arm's ratio then also holds the two GPUs' difference."""
    run_dir = fabricate_run(tmp_path, (1,))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "different GPUs" not in " ".join(results.build_table(results.load_run(run_dir), 1).notes)
    for j, (host, uuid) in zip(manifest["jobs"], [("vm-a", "GPU-aaaa"), ("vm-b", "GPU-bbbb")]):
        j.update(host=host, gpu={"id": "0", "index": 0, "uuid": uuid, "name": "NVIDIA H100 80GB HBM3"})
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    notes = " ".join(results.build_table(results.load_run(run_dir), 1).notes)
    assert "the run's jobs ran on 2 different GPUs" in notes


# -- compare -------------------------------------------------------------------------------------------
def test_compare_two_runs(tmp_path):
    env_b = dict(ENV, gpus=[{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920}])
    a = results.load_run(make_run(tmp_path / "a", (1,)))
    b = results.load_run(make_run(tmp_path / "b", (1,), arm_opts={"l1": {"scale": 2.0, "env": env_b},
                                                                  "nosleep": {"scale": 0.5, "env": env_b}}))
    b.manifest["environment"] = env_b
    cmp = comparing.compare(results.build_table(a, 1), results.build_table(b, 1), 1)
    sw = next(r for r in cmp.rows if r.metric == "switch" and r.model == "A")
    assert (no_cv(sw.arms["l1"].a), no_cv(sw.arms["l1"].b), sw.arms["l1"].ratio) == (
        cell(0.1, 0.2, 0.3, 3), cell(0.2, 0.4, 0.6, 3), 2.0)
    assert sw.arms["nosleep"].ratio == 0.5
    assert cmp.manifest_diff == {"gpu": {"a": "NVIDIA H100 80GB HBM3", "b": "NVIDIA A100-SXM4-80GB"}}
    text = comparing.compare_text(cmp, "github")
    assert "NVIDIA A100-SXM4-80GB" in text and "l1 b" in text
    assert json.loads(comparing.compare_text(cmp, "json")) == cmp.to_json()


def test_compare_says_which_ratios_have_ranges_apart(tmp_path):
    a = results.load_run(make_run(tmp_path / "a", (1,)))
    b = results.load_run(make_run(tmp_path / "b", (1,), arm_opts={"l1": {"scale": 10.0}}))
    cmp = comparing.compare(results.build_table(a, 1), results.build_table(b, 1), 1)
    sw = next(r for r in cmp.rows if r.metric == "switch" and r.model == "A")
    assert (sw.arms["l1"].overlap, sw.arms["nosleep"].overlap) == (False, True)  # 0.1..0.3 vs 1..3
    line = next(x for x in comparing.compare_text(cmp, width=None).splitlines() if x.startswith("wake / switch   A"))
    assert "10.00 apart" in line and line.endswith(" 1.00?"), line      # ? : the restarts' cache state is unknown
    assert "- apart: a's and b's min..max ranges do not overlap" in comparing.compare_text(cmp)


def facts_of(tmp_path):
    return run_facts(results.load_run(make_run(tmp_path, (1,))))


def test_compare_diffs_per_arm_facts_over_the_arms_both_ran(tmp_path):
    fa = replace(facts_of(tmp_path), server_args={"l1": ["--enable-sleep-mode"], "nosleep": None})
    fb = replace(fa, server_args={"l1": ["--enable-sleep-mode"], "nosleep": ["--x"]})
    assert comparing.manifest_diff(fa, fb) == {}
    fb = replace(fb, server_args={**fb.server_args, "l1": ["--enable-sleep-mode", "--quantization", "fp8"]})
    assert comparing.manifest_diff(fa, fb) == {"server_args.l1": {"a": fa.server_args["l1"],
                                                                  "b": fb.server_args["l1"]}}


def test_compare_with_published_lists_output_and_cache(tmp_path):
    run = results.load_run(make_run(tmp_path, (5,), fixed_output=True))
    cmp = comparing.compare(results.build_table(run, 5), comparing.published_table(5), 5, against_published=True)
    total = next(r for r in cmp.rows if r.metric == "total")
    assert total.arms["nosleep"].b.median == 318.19
    assert set(cmp.manifest_diff) == {"gpu", "protocol", "fixed_output", "cache"}
    assert cmp.manifest_diff["fixed_output"] == {"a": True, "b": False}
    assert comparing.published_table(1, "a4000").run.gpu == "A4000"
    assert comparing.published_table(5, "a4000") is None            # the A4000 runs are Table 1's only
    with pytest.raises(Exception, match="published:h100: no such source"):
        comparing.published_table(1, "h100")


def test_bundle_or_folder_or_id_loads_the_same_run(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    packed = bundle.load_any(bundle.make_bundle(run_dir, render=results.write_tables, figures=False))
    assert bundle.load_any(run_dir.name, tmp_path).units == bundle.load_any(run_dir).units == packed.units
    with pytest.raises(NotFound):
        bundle.load_any("no-such-run", tmp_path)


def test_published_json_matches_reference():
    pub = published.published()
    for n, spec in scenarios.TABLES.items():
        assert pub["tables"][str(n)]["arms"] == list(spec.arms)
        for ref in pub["tables"][str(n)]["references"]:
            for arm, series in ref["arms"].items():
                rounds = {e["round"] for e in series["events"]}
                assert rounds == ({1, 2, 3} if arm == "nosleep" else {0, 1, 2, 3})
    ref = REPO.parent / "shared" / "reference" / "blog-2025-10-26-sleep-mode.json"
    if not ref.exists():
        pytest.skip("shared reference file not present")
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_published.py"), str(ref), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("complete, state", [(False, "unfinished"), (True, "failed")])
def test_a_repeat_cut_off_without_status_is_pending_in_an_open_run_only(tmp_path, complete, state):
    run_dir = make_run(tmp_path, (1,), complete=complete)
    for name in ("status.json", "events.jsonl"):      # what a machine taken back mid-job leaves
        (run_dir / "l1" / "r1" / name).unlink()
    arm = table_of(run_dir, 1).arms[0]
    assert arm.state == state
    assert arm.errors == (("r1: cut off: the job left no status.json (a resume runs it again)",) if not complete
                          else ("r1: no events.jsonl",))


def test_compare_names_a_different_runtime_and_concurrency_but_not_an_unknown_one(tmp_path):
    fa = replace(facts_of(tmp_path), runtime="docker", at_once=2)
    assert comparing.manifest_diff(fa, replace(fa, runtime="local", at_once=1)) == {
        "runtime": {"a": "docker", "b": "local"}, "at_once": {"a": 2, "b": 1}}
    assert comparing.manifest_diff(fa, replace(fa, at_once=0)) == {}      # 0: no job times recorded
