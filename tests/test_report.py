"""kit.report: synthetic runs (written with kit.events.Writer, DESIGN.md's arm sequences) -> exact table values."""
import copy
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kit import report, scenarios
from kit.events import SchemaError, Writer

REPO = Path(__file__).resolve().parent.parent
ENV = {"vllm_version": "0.11.0", "torch_version": "2.8.0", "cuda_version": "12.8", "driver": "570.86",
       "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}], "h2d_gbps": 25.0,
       "python": "3.12.0"}
# durations per "<kind> <model>", consumed in the order the arm's sequence meets them
SLEEP_TIMES = {"load A": [10.0], "warmup A": [1.0], "load B": [20.0], "warmup B": [2.0],
               "sleep A": [0.5, 0.1, 0.2, 0.3], "sleep B": [0.6, 0.4, 0.5],
               "wake A": [0.1, 0.3, 0.2], "wake B": [1.0, 1.2, 1.1],
               "prompt A": [0.4, 0.6, 0.5], "prompt B": [0.8, 0.9, 1.0], "stop A": [2.0], "stop B": [2.0]}
NOSLEEP_TIMES = {"load A": [30.0, 32.0, 31.0], "load B": [50.0, 54.0, 52.0], "prompt A": [3.0, 2.0, 2.5],
                 "prompt B": [6.0, 5.0, 5.5], "stop A": [1.0, 1.0, 1.0], "stop B": [1.0, 1.0, 1.0]}
L2_PARTS = {"wake_up": 0.2, "reload_weights": 0.6, "reset_prefix_cache": 0.05, "warmup": 0.15}
RSS_GROWTH = {1: 1200, 2: 10}   # MiB added by a server's first sleep, per level


def sequence(arm):
    """DESIGN.md's event sequence of an arm: [(kind, model, round)]."""
    if arm.sleep_level is None:
        return [(k, m, r) for r in (1, 2, 3) for m in "AB" for k in ("load", "prompt", "stop")]
    seq = []
    for m in "AB":
        seq += [("load", m, 0)] + ([("warmup", m, 0)] if arm.warmup else []) + [("sleep", m, 0)]
    for r in (1, 2, 3):
        for m in "AB":
            seq += [("wake", m, r), ("prompt", m, r)] + ([] if (r, m) == (3, "B") else [("sleep", m, r)])
    return seq + [("stop", "A", 3), ("stop", "B", 3)]


def write_arm(run_dir, arm_name, repeat=1, scale=1.0, times=None, status_ok=True, failed_check=False, env=ENV):
    """One arm repeat: events.jsonl (kit.events.Writer), env.json, status.json. Durations from `times` x scale."""
    arm = scenarios.ARMS[arm_name]
    times = copy.deepcopy(times or (NOSLEEP_TIMES if arm.sleep_level is None else SLEEP_TIMES))
    folder = Path(run_dir) / arm_name / f"r{repeat}"
    folder.mkdir(parents=True)
    w = Writer(folder / "events.jsonl", run=Path(run_dir).name, arm=arm_name, repeat=repeat)
    rss, slept, t = {}, set(), 0.0
    for kind, model, rnd in sequence(arm):
        d = round(times[f"{kind} {model}"].pop(0) * scale, 6)
        extra, gpu = {}, (30000, 30000)
        before = rss.get(model)
        if kind == "load":
            rss[model] = 1500
        if kind == "prompt":
            extra = {"ttft_s": round(d / 10, 6), "output_tokens": 100}
        if kind == "sleep":
            gpu = (30000, 6000)
            rss[model] += 0 if model in slept else RSS_GROWTH[arm.sleep_level]
            slept.add(model)
            bad = failed_check and rnd == 0 and model == "A"
            extra = {"level": arm.sleep_level, "checks": [
                {"check": "gpu_dropped", "ok": True, "detail": "GPU used 30000 -> 6000 MiB"},
                {"check": "rss_level2", "ok": not bad, "detail": "host RSS +1200 MiB on first sleep"}]}
        if kind == "wake":
            gpu = (6000, 30000)
            extra = {"level": arm.sleep_level,
                     "parts": ({p: round(d * f, 6) for p, f in L2_PARTS.items()} if arm.sleep_level == 2
                               else {"wake_up": d})}
        w.write(kind=kind, model=model, round=rnd, start_s=round(t, 6), duration_s=d, ok=True, error=None,
                gpu_mib_before=gpu[0], gpu_mib_after=gpu[1], rss_mib_before=before, rss_mib_after=rss.get(model),
                **extra)
        t += d
    w.write(kind="total", model=None, round=0, start_s=0.0, duration_s=round(t, 6), ok=True, error=None)
    w.close()
    (folder / "env.json").write_text(json.dumps(env, sort_keys=True))
    status = {"arm": arm_name, "repeat": repeat, "ok": status_ok, "exit_code": 0 if status_ok else 1,
              "error": None if status_ok else "server A never became ready (exit 1)", "seconds": round(t, 2)}
    (folder / "status.json").write_text(json.dumps(status, sort_keys=True))
    return folder


def make_run(results, tables, repeat=1, run_id="20250101-000000-t", env=ENV, fixed_output=False, twin=False,
             **per_arm):
    """A run directory for `tables`; per_arm: arm name (dashes as underscores) -> write_arm keyword dict."""
    run_dir = Path(results) / (run_id + "".join(map(str, tables)))
    run_dir.mkdir(parents=True)
    arms = scenarios.arms_for(tables)
    for a in arms:
        for k in range(1, repeat + 1):
            kw = dict(per_arm.get(a.replace("-", "_"), {}))
            kw["scale"] = kw.get("scale", 1.0) * (2.0 if k == 2 else 1.0)
            write_arm(run_dir, a, k, env=env, **kw)
    models = {"A": {"name": scenarios.MODEL_A, "path": None, "sha256": None},
              "B": {"name": scenarios.MODEL_B, "path": None, "sha256": None}}
    if twin:
        models["A"]["twin"] = "qwen3-0.6b-twin"
    manifest = {"run_id": run_dir.name, "kit_version": "0.1.0", "git_commit": "0" * 40, "complete": True,
                "command": ["kit", "run"], "created": "2025-01-01T00:00:00Z", "ended": "2025-01-01T01:00:00Z",
                "runtime": {"name": "local"}, "models": models, "environment": env,
                "options": {"tables": list(tables), "arms": arms, "repeat": repeat, "protocol": "corrected",
                            "fixed_output": fixed_output, "cache": "empty", "server_cmd": None, "ready_timeout": 900},
                "server_args": {a: scenarios.ARMS[a].server_args() for a in arms}, "arms": {}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return run_dir


def row(table, metric, model):
    found = [r for r in table["rows"] if r["metric"] == metric and r["model"] == model]
    assert len(found) == 1, (metric, model, [(r["metric"], r["model"]) for r in table["rows"]])
    return found[0]


def mem(table, metric, model):
    return next(r for r in table["memory"] if r["metric"] == metric and r["model"] == model)


def cell(mn, med, mx, n):
    return {"min": mn, "median": med, "max": mx, "n": n}


# -- values ------------------------------------------------------------------------------------------
def test_table1_exact_values(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (1,))), 1)
    assert [s["state"] for s in t["arms"]] == ["ok", "ok"]
    sw = row(t, "switch", "A")
    assert sw["arms"] == {"l1": cell(0.1, 0.2, 0.3, 3), "nosleep": cell(30.0, 31.0, 32.0, 3)}
    assert sw["ratio"] == 155.0
    assert row(t, "load", "A")["arms"]["l1"] == cell(10.0, 10.0, 10.0, 1)
    assert row(t, "load", "A")["ratio"] == 3.1
    assert row(t, "warmup", "B")["arms"] == {"l1": cell(2.0, 2.0, 2.0, 1), "nosleep": None}
    assert row(t, "prompt", "B")["arms"]["nosleep"] == cell(5.0, 5.5, 6.0, 3)
    assert row(t, "prompt", "B")["ratio"] == round(5.5 / 0.9, 6)
    assert row(t, "ttft", "A")["arms"]["l1"] == cell(0.04, 0.05, 0.06, 3)
    assert row(t, "sleep", "B")["arms"]["l1"] == cell(0.4, 0.45, 0.5, 2)        # last sleep skipped
    assert row(t, "sleep_setup", "A")["arms"]["l1"] == cell(0.5, 0.5, 0.5, 1)
    total_l1 = sum(sum(v) for v in SLEEP_TIMES.values())
    assert row(t, "total", None)["arms"]["l1"]["median"] == round(total_l1, 6)
    assert not any(r["metric"].startswith("part:") for r in t["rows"])           # level 1: no part rows


def test_repeats_pool_rounds_and_repeats(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (1,), repeat=2)), 1)   # r2 = durations x 2
    assert row(t, "switch", "A")["arms"]["l1"] == cell(0.1, 0.25, 0.6, 6)
    assert row(t, "load", "B")["arms"]["l1"] == cell(20.0, 30.0, 40.0, 2)
    assert row(t, "switch", "B")["arms"]["nosleep"] == cell(50.0, 77.0, 108.0, 6)   # 50 52 54 | 100 104 108


def test_memory_columns(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (4,))), 4)
    assert mem(t, "gpu_freed_by_sleep", "A")["arms"]["l1"] == cell(24000, 24000, 24000, 4)
    assert mem(t, "gpu_taken_by_wake", "B")["arms"]["l2"] == cell(24000, 24000, 24000, 3)
    assert mem(t, "rss_first_sleep", "A")["arms"] == {"l1": cell(1200, 1200, 1200, 1), "l2": cell(10, 10, 10, 1)}
    assert mem(t, "rss_peak", "A")["arms"]["l1"] == cell(2700, 2700, 2700, 1)
    gb = 1200 * 2**20 / 1e9      # the pinned backup, moved back by each level-1 wake
    assert mem(t, "wake_gbps", "A")["arms"]["l1"] == cell(round(gb / 0.3, 6), round(gb / 0.2, 6),
                                                          round(gb / 0.1, 6), 3)
    assert mem(t, "wake_gbps", "A")["arms"]["l2"] is None                       # level 2 reloads from disk
    assert mem(t, "wake_vs_h2d", "A")["arms"]["l1"]["median"] == round(round(gb / 0.2, 6) / 25.0, 6)
    assert mem(t, "h2d_gbps", "B")["arms"]["l2"] == cell(25.0, 25.0, 25.0, 1)


def test_h2d_null_is_na(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (1,), env=dict(ENV, h2d_gbps=None))), 1)
    assert not [r for r in t["memory"] if r["metric"] in ("h2d_gbps", "wake_vs_h2d")]
    assert mem(t, "wake_gbps", "A")["arms"]["l1"] is not None


def test_level2_switch_parts(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (4,))), 4)
    assert row(t, "switch", "B")["arms"]["l2"] == cell(1.0, 1.1, 1.2, 3)
    assert row(t, "part:reload_weights", "B")["arms"]["l2"] == cell(0.6, 0.66, 0.72, 3)
    assert row(t, "part:wake_up", "A")["arms"]["l1"] == cell(0.1, 0.2, 0.3, 3)
    parts = [r["metric"] for r in t["rows"] if r["metric"].startswith("part:") and r["model"] == "A"]
    assert parts == ["part:wake_up", "part:reload_weights", "part:reset_prefix_cache", "part:warmup"]


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_rows_present_for_each_table(tmp_path, number):
    t = report.build_table(report.load_run(make_run(tmp_path, (number,))), number)
    test, control = scenarios.TABLES[number].arms
    assert [s["arm"] for s in t["arms"]] == [test, control]
    for metric in ("load", "switch", "prompt", "ttft", "sleep", "stop"):
        for model in "AB":
            assert any(row(t, metric, model)["arms"].values())
    assert row(t, "total", None)["ratio"] is not None
    text = report.render(t, "github")
    assert f"{control}/{test}" in text and "wake / switch" in text


def test_nowarm_arm_has_no_warmup_numbers(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (3,))), 3)
    assert row(t, "warmup", "A")["arms"] == {"l1": cell(1.0, 1.0, 1.0, 1), "l1-nowarm": None}
    assert row(t, "warmup", "A")["published"][0]["arms"]["l1-nowarm"] is None


# -- failures, checks ----------------------------------------------------------------------------------
def test_failed_arm_shows_failed_and_no_numbers(tmp_path):
    run_dir = make_run(tmp_path, (1,), nosleep={"status_ok": False})
    t = report.build_table(report.load_run(run_dir), 1)
    ctl = t["arms"][1]
    assert ctl["state"] == "failed" and ctl["errors"] == ["r1: server A never became ready (exit 1)"]
    assert all(r["arms"]["nosleep"] is None and r["ratio"] is None for r in t["rows"])
    assert all(r["arms"]["nosleep"] is None for r in t["memory"])
    text = report.render(t, "plain")
    assert "FAILED - r1: server A never became ready (exit 1)" in text
    assert "31.000" not in text and "5.500" not in text          # the failed arm's medians are not shown
    assert row(t, "switch", "A")["arms"]["l1"]["median"] == 0.2   # the other arm still has its numbers


def test_missing_events_or_arm_is_failed(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    (run_dir / "l1" / "r1" / "events.jsonl").unlink()
    t = report.build_table(report.load_run(run_dir), 1)
    assert t["arms"][0]["state"] == "failed" and t["arms"][0]["errors"] == ["r1: no events.jsonl"]
    t2 = report.build_table(report.load_run(run_dir), 4)         # l2 never ran in this run
    assert t2["arms"][1]["state"] == "failed" and "not run" in t2["arms"][1]["errors"][0]


def test_failed_event_fails_the_repeat(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    path = run_dir / "l1" / "r1" / "events.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[6])
    bad.update(ok=False, error="wake_up returned 500")
    lines[6] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")
    t = report.build_table(report.load_run(run_dir), 1)
    assert t["arms"][0]["state"] == "failed"
    assert t["arms"][0]["errors"] == [f"r1: {bad['kind']} {bad['model']} round {bad['round']}: wake_up returned 500"]


def test_failed_check_makes_arm_suspect(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (4,), l2={"failed_check": True})), 4)
    l2 = t["arms"][1]
    assert l2["state"] == "suspect"
    assert l2["failed_checks"] == [{"repeat": 1, "seq": 3, "kind": "sleep", "model": "A", "round": 0,
                                    "check": "rss_level2", "detail": "host RSS +1200 MiB on first sleep"}]
    assert row(t, "switch", "A")["arms"]["l2"]["median"] == 0.2   # numbers kept, flagged
    text = report.render(t, "github")
    assert "l2 SUSPECT median" in text
    assert "SUSPECT l2 r1 seq 3: sleep A round 0 - check rss_level2 failed: host RSS +1200 MiB" in text


# -- published, header, notes ------------------------------------------------------------------------
def test_published_numbers_beside_measured(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (1,))), 1)
    assert [(r["gpu"], r["vllm"], r["figure"]) for r in t["published"]] == [
        ("A100", "0.11.0", "plotly-sleep-levels-comparison"), ("A4000", "0.11.0", "plotly-sleep-mode-a4000")]
    pub = row(t, "switch", "A")["published"]
    assert pub[0]["arms"]["l1"] == dict(cell(0.25, 0.25, 0.28, 3), values=[0.25, 0.28, 0.25])
    assert pub[0]["arms"]["nosleep"]["values"] == [38.53, 37.21, 38.15]
    assert pub[0]["ratio"] == round(38.15 / 0.25, 6)
    assert pub[1]["arms"]["nosleep"]["values"] == [21.04, 20.98, 20.98]
    assert row(t, "total", None)["published"][0]["arms"]["nosleep"]["median"] == 318.19
    assert row(t, "load", "B")["published"][0]["arms"]["nosleep"]["n"] == 3
    text = report.render(t, "github")
    assert "pub[1] l1 (A100, vLLM 0.11.0)" in text and "pub[2] nosleep (A4000, vLLM 0.11.0)" in text
    assert "the post's text prints l1 112.6s, nosleep 357.1s" in text


def test_header_names_gpu_versions_models_and_notes(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (2,), fixed_output=True, twin=True)), 2)
    assert t["run"]["gpu"] == "NVIDIA H100 80GB HBM3" and t["run"]["vllm"] == "0.11.0"
    assert t["run"]["models"]["A"] == {"name": "Qwen/Qwen3-0.6B", "twin": "qwen3-0.6b-twin"}
    text = report.render(t, "plain")
    assert "GPU: NVIDIA H100 80GB HBM3 | vLLM 0.11.0 | torch 2.8.0 | CUDA 12.8 | driver 570.86" in text
    assert "A = Qwen/Qwen3-0.6B (twin: qwen3-0.6b-twin)" in text
    assert report.FIXED_NOTE in text
    free = report.build_table(report.load_run(make_run(tmp_path / "x", (2,))), 2)
    assert report.FREE_NOTE in free["notes"]


# -- rendering ---------------------------------------------------------------------------------------
def test_render_is_deterministic_and_json_round_trips(tmp_path):
    a = report.build_table(report.load_run(make_run(tmp_path / "a", (4,), repeat=2)), 4)
    b = report.build_table(report.load_run(make_run(tmp_path / "b", (4,), repeat=2)), 4)
    for fmt in report.FORMATS:
        assert report.render(a, fmt).encode() == report.render(b, fmt).encode()
    assert json.loads(report.render(a, "json")) == a
    with pytest.raises(ValueError):
        report.render(a, "html")


def test_plain_and_github_formats(tmp_path):
    t = report.build_table(report.load_run(make_run(tmp_path, (1,))), 1)
    gh, plain = report.render(t, "github"), report.render(t, "plain")
    assert "| wake / switch  | A       |       0.200 |" in gh
    assert "|" not in plain.split("\n\n")[1]
    line = next(x for x in plain.splitlines() if x.startswith("wake / switch") and " A " in x)
    assert line.split()[4:8] == ["0.200", "0.100..0.300", "3", "31.000"]


def test_write_tables(tmp_path):
    run_dir = make_run(tmp_path, (1, 4))
    paths = report.write_tables(run_dir, [1, 4])
    assert [p.name for p in paths] == ["table1.md", "table1.json", "table4.md", "table4.json"]
    md = paths[0].read_text()
    assert md.startswith("# Table 1: Sleep mode (L1) vs no sleep mode\n\n- run 20250101-000000-t14")
    assert json.loads(paths[1].read_text())["table"] == 1
    first = [p.read_bytes() for p in paths]
    assert [p.read_bytes() for p in report.write_tables(run_dir, None)] == first   # default: manifest tables


def test_malformed_events_name_file_and_line(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    path = run_dir / "nosleep" / "r1" / "events.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"kind": "stop"', '"kind": "nap"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SchemaError, match=rf"{path}:3: unknown event kind 'nap'"):
        report.load_run(run_dir)
    path.write_text("{not json\n")
    with pytest.raises(SchemaError, match=rf"{path}:1: not JSON"):
        report.load_run(run_dir)


# -- compare -------------------------------------------------------------------------------------------
def test_compare_two_runs(tmp_path):
    env_b = dict(ENV, gpus=[{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920}])
    a = report.load_run(make_run(tmp_path / "a", (1,)))
    b = report.load_run(make_run(tmp_path / "b", (1,), env=env_b, l1={"scale": 2.0}, nosleep={"scale": 0.5}))
    cmp = report.compare(a, b, 1)
    sw = next(r for r in cmp["rows"] if r["metric"] == "switch" and r["model"] == "A")
    assert sw["arms"]["l1"] == {"a": cell(0.1, 0.2, 0.3, 3), "b": cell(0.2, 0.4, 0.6, 3), "ratio": 2.0}
    assert sw["arms"]["nosleep"]["ratio"] == 0.5
    assert cmp["manifest_diff"] == {"gpu": {"a": "NVIDIA H100 80GB HBM3", "b": "NVIDIA A100-SXM4-80GB"}}
    text = report.render_compare(cmp, "github")
    assert "NVIDIA A100-SXM4-80GB" in text and "l1 b/a" in text
    assert json.loads(report.render_compare(cmp, "json")) == cmp


def test_compare_with_published_and_bundle(tmp_path):
    run_dir = make_run(tmp_path, (5,))
    bundle = tmp_path / f"{run_dir.name}.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(run_dir, arcname=run_dir.name)
    run = report.load_run_any(bundle)
    assert run.run_id == run_dir.name and run.run_dir == bundle
    cmp = report.compare(run, "published", 5)
    total = next(r for r in cmp["rows"] if r["metric"] == "total")
    assert total["arms"]["nosleep"]["b"]["median"] == 318.19
    sw = next(r for r in cmp["rows"] if r["metric"] == "switch" and r["model"] == "B")
    assert sw["arms"]["l2"]["b"]["values"] == [2.55, 2.62, 2.58]
    assert sw["arms"]["l2"]["ratio"] == round(2.58 / 1.1, 6)
    assert cmp["manifest_diff"] == {"gpu": {"a": "NVIDIA H100 80GB HBM3", "b": "A100"}}   # same vLLM, models
    assert "b: published (A100, vLLM 0.11.0" in report.render_compare(cmp, "plain")


def test_compare_failed_arm(tmp_path):
    a = report.load_run(make_run(tmp_path / "a", (1,)))
    b = report.load_run(make_run(tmp_path / "b", (1,), nosleep={"status_ok": False}))
    cmp = report.compare(a, b, 1)
    assert cmp["b"]["arms"]["nosleep"]["state"] == "failed"
    assert all(r["arms"]["nosleep"]["b"] is None and r["arms"]["nosleep"]["ratio"] is None for r in cmp["rows"])
    assert "FAILED" in report.render_compare(cmp, "plain")


# -- published.json ------------------------------------------------------------------------------------
def test_published_json_matches_reference():
    pub = report.published()
    t1 = pub["tables"]["1"]["references"]
    assert [r["gpu"] for r in t1] == ["A100", "A4000"] and {r["vllm"] for r in t1} == {"0.11.0"}
    for n, spec in scenarios.TABLES.items():
        refs = pub["tables"][str(n)]["references"]
        assert pub["tables"][str(n)]["arms"] == list(spec.arms)
        for ref in refs:
            for arm, series in ref["arms"].items():
                rounds = {e["round"] for e in series["events"]}
                assert rounds == ({1, 2, 3} if arm == "nosleep" else {0, 1, 2, 3})
    ref = Path("/work/shared/reference/blog-2025-10-26-sleep-mode.json")
    if not ref.exists():
        pytest.skip("shared reference file not present")
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_published.py"), str(ref), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_wake_bandwidth_uses_what_the_engine_backed_up(tmp_path):
    run_dir = make_run(tmp_path, (1,))
    path = run_dir / "l1" / "r1" / "events.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    first_a = next(e for e in lines if e["kind"] == "sleep" and e["model"] == "A")
    first_a["checks"] = [{"check": "engine_log", "ok": True, "detail": "engine: 1.00 GiB backed up in CPU"}]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    t = report.build_table(report.load_run(run_dir), 1)
    gb = 1024 * 2**20 / 1e9      # 1.00 GiB, not the 1200 MiB of RSS that sleep added
    assert mem(t, "wake_gbps", "A")["arms"]["l1"]["median"] == round(gb / 0.2, 6)


def test_every_arm_is_set_against_the_runs_one_bandwidth_measurement(tmp_path):
    run_dir = make_run(tmp_path, (1,), env=dict(ENV, h2d_gbps=None))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["environment"] = dict(ENV, h2d_gbps=40.0)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    t = report.build_table(report.load_run(run_dir), 1)
    assert mem(t, "h2d_gbps", "A")["arms"]["l1"] == cell(40.0, 40.0, 40.0, 1)
