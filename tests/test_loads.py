"""The load breakdown: parsing vLLM 0.24.0's and 0.11.0's start-up lines, events schema 3, the backfill of
old runs from their server logs, the table and the figure."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fabricate import fabricate_run
from kit import layout, results
from kit.plot import specs
from kit.cli import main
from kit.results import loads
from kit.workload import events, serverlog

REPO = Path(__file__).resolve().parents[1]
H200X2 = REPO / "results" / "reference" / "h200x2-vllm0.24.0-twins"
DOUBLE = REPO / "tests" / "vllm_double.py"


def first_segment(path):
    return serverlog.segments(path.read_text(encoding="utf-8"))[0]


# -- parsing -------------------------------------------------------------------------------------------
def test_a_real_0_24_0_start_that_compiled():
    """h200x2 l2 r1, model A: 'Compiling a graph for compile range (1, 4096) takes 7.64 s' (V2 runner)."""
    b = serverlog.breakdown(first_segment(H200X2 / "l2" / "r1" / "server-A.log"))
    assert b == {"compile_cache": "miss", "compile_s": 21.02, "weights_gib": 1.12, "weights_s": 2.308987,
                 "graphs_s": 1.0, "engine_init_s": 25.10, "first_log_s": None, "cache_key": "452dab6adc"}


def test_a_real_0_24_0_start_that_loaded_from_the_cache():
    """h200x2 l1 r1, model B: the V1 runner's 'Model loading took 7.14 GiB memory and ...' wording."""
    b = serverlog.breakdown(first_segment(H200X2 / "l1" / "r1" / "server-B.log"), first_log_s=1.5)
    assert b["compile_cache"] == "hit" and b["compile_s"] == 3.75 and b["engine_init_s"] == 8.22
    assert (b["weights_gib"], b["weights_s"], b["first_log_s"]) == (7.14, 1.395648, 1.5)
    assert b["cache_key"] == "9addf7a983"


# the 0.11.0 wording, written from its source strings (file:line in docs/vllm-versions.md)
START = "=== sleepkit: starting server A: python3 -m vllm.entrypoints.openai.api_server --model m\n"
CACHE = "/root/.cache/vllm/torch_compile_cache/0a1b2c3d4e/rank_0_0/backbone"


def v11_log(*lines):
    return START + "".join(f"(EngineCore_DP0 pid=1) INFO 10-06 10:00:10 [{line}\n" for line in lines)


V11_MISS = v11_log(
    "gpu_model_runner.py:2653] Model loading took 1.1201 GiB and 2.345678 seconds",
    f"backends.py:548] Using cache directory: {CACHE} for vLLM's torch.compile",
    "backends.py:559] Dynamo bytecode transform time: 4.10 s",
    "backends.py:197] Cache the graph for dynamic shape for later use",
    "backends.py:218] Compiling a graph for dynamic shape takes 15.90 s",
    "monitor.py:34] torch.compile takes 20.00 s in total",
    "gpu_model_runner.py:3480] Graph capturing finished in 3 secs, took 0.08 GiB",
    "core.py:210] init engine (profile, create kv cache, warmup model) took 28.40 seconds")
V11_HIT = v11_log(
    "gpu_model_runner.py:2653] Model loading took 1.1201 GiB and 1.500000 seconds",
    f"backends.py:548] Using cache directory: {CACHE} for vLLM's torch.compile",
    "backends.py:164] Directly load the compiled graph(s) for dynamic shape from the cache, took 1.203 s",
    "monitor.py:34] torch.compile takes 2.50 s in total",
    "monitor.py:34] torch.compile takes 4.75 s in total",
    "gpu_model_runner.py:3480] Graph capturing finished in 2 secs, took 0.08 GiB",
    "core.py:210] init engine (profile, create kv cache, warmup model) took 9.10 seconds")


def test_0_11_0_wording():
    miss, hit = serverlog.breakdown(V11_MISS), serverlog.breakdown(V11_HIT)
    assert miss == {"compile_cache": "miss", "compile_s": 20.0, "weights_gib": 1.1201, "weights_s": 2.345678,
                    "graphs_s": 3.0, "engine_init_s": 28.4, "first_log_s": None, "cache_key": "0a1b2c3d4e"}
    # 0.11.0's "takes ... in total" is a running total: the last one is the sum
    assert (hit["compile_cache"], hit["compile_s"], hit["engine_init_s"]) == ("hit", 4.75, 9.1)


def test_what_the_log_does_not_say_stays_none():
    assert serverlog.breakdown("=== sleepkit: starting server A: x\nTraceback: no engine\n") == dict.fromkeys(
        events.BREAKDOWN)
    # 0.24.0 leaves the compilation figure out when nothing compiled (core.py:343-346), and prints the
    # encoder's share when a multimodal encoder compiled (core.py:328-336)
    eager = "init engine (profile, create kv cache, warmup model) took 3.25 s\n"
    assert serverlog.breakdown(eager)["compile_s"] == 0.0 and serverlog.breakdown(eager)["compile_cache"] is None
    encoder = ("init engine (profile, create kv cache, warmup model) took 30.00 s "
               "(compilation: 12.50 s \u2014 language_model: 9.00 s, encoder: 3.50 s)\n")
    assert serverlog.breakdown(encoder)["compile_s"] == 12.5
    # an AOT load alone is a hit (0.24.0 decorators.py:312); one compiled graph makes it a miss
    aot = "Directly load AOT compilation from path /root/.cache/vllm/torch_compile_cache/torch_aot_compile/x\n"
    assert serverlog.breakdown(aot)["compile_cache"] == "hit"
    assert serverlog.breakdown(aot + "Compiling a graph for compile range (1, 4096) takes 7.00 s\n")["compile_cache"] == "miss"


def test_segments_are_the_starts_of_a_log():
    text = (H200X2 / "nosleep" / "r1" / "server-A.log").read_text(encoding="utf-8")
    starts = serverlog.segments("junk before the first start\n" + text)
    assert len(starts) == 3 and all(s.startswith(serverlog.HEADER) for s in starts)
    assert [serverlog.breakdown(s)["compile_cache"] for s in starts] == ["miss", "hit", "hit"]


# -- events schema 3 -----------------------------------------------------------------------------------
BREAKDOWN = serverlog.breakdown(V11_MISS, first_log_s=0.8)


def load_event(**extra):
    return dict(kind="load", model="A", round=0, start_s=0.0, duration_s=30.0, ok=True, error=None, **extra)


def test_schema_3_round_trip_and_schema_2_still_reads(tmp_path):
    w = events.Writer(tmp_path / "events.jsonl", run="r", arm="l1", repeat=1)
    w.write(**load_event(breakdown=BREAKDOWN))
    w.close()
    back = events.read(tmp_path / "events.jsonl")
    assert back[0]["schema"] == 3 and back[0]["breakdown"] == BREAKDOWN
    old = dict(load_event(), schema=2, run="r", arm="l1", repeat=1, seq=1)
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(dict(old, schema=1, seq=2)) + "\n")
    assert [e["schema"] for e in events.read(tmp_path / "old.jsonl")] == [2, 1]


@pytest.mark.parametrize("change, message", [
    ({"schema": 2}, "schema 3 or newer"),
    ({"kind": "wake"}, "belongs on a load event"),
    ({"breakdown": {**BREAKDOWN, "extra": 1}}, "breakdown keys must be"),
    ({"breakdown": {k: v for k, v in BREAKDOWN.items() if k != "cache_key"}}, "breakdown keys must be"),
    ({"breakdown": {**BREAKDOWN, "compile_cache": "maybe"}}, "'compile_cache' has a wrong value"),
    ({"breakdown": {**BREAKDOWN, "compile_s": "21"}}, "'compile_s' has a wrong value"),
    ({"breakdown": {**BREAKDOWN, "weights_s": True}}, "'weights_s' has a wrong value"),
    ({"breakdown": {**BREAKDOWN, "cache_key": 5}}, "'cache_key' has a wrong value"),
])
def test_a_malformed_breakdown_is_refused(change, message):
    record = dict(load_event(breakdown=BREAKDOWN), schema=3, run="r", arm="l1", repeat=1, seq=1)
    with pytest.raises(events.SchemaError, match=message):
        events.validate(dict(record, **change))


# -- old runs: backfilled from their logs ---------------------------------------------------------------
def test_a_committed_reference_run_gets_its_breakdowns_from_its_logs():
    run = results.load_run(H200X2)
    for unit, reps in run.units.items():
        for rep in reps:
            folder = H200X2 / unit / f"r{rep.repeat}"
            for model in ("A", "B"):
                text = (folder / layout.server_log(model)).read_text(encoding="utf-8")
                compiled = [bool(re.search("Compiling a graph for", s)) for s in serverlog.segments(text)]
                got = [e["breakdown"] for e in rep.events if e["kind"] == "load" and e["model"] == model]
                assert [b["compile_cache"] for b in got] == ["miss" if c else "hit" for c in compiled]
                assert all(b["first_log_s"] is None and b["engine_init_s"] for b in got)
    l2 = [e["breakdown"]["compile_cache"] for e in run.units["l2"][0].events if e["kind"] == "load"]
    l1 = [e["breakdown"]["compile_cache"] for r in run.units["l1"] for e in r.events if e["kind"] == "load"]
    assert l2 == ["miss", "miss"] and set(l1) == {"hit"}


def test_a_repeat_without_server_logs_reads_with_no_breakdown(tmp_path):
    run_dir = fabricate_run(tmp_path / "results", (1,))
    for path in run_dir.glob("*/r*/events.jsonl"):      # as kit wrote them before schema 3
        lines = [dict(json.loads(line), schema=2) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    run = results.load_run(run_dir)
    loaded = [e for reps in run.units.values() for r in reps for e in r.events if e["kind"] == "load"]
    assert loaded and all(e["breakdown"] is None for e in loaded)
    table = loads.build_loads(run)
    assert table.rows and all(r.cache is None and r.parts["compile"] is None for r in table.rows)
    assert any("have no parts" in n for n in table.notes)


# -- the table and the figure ------------------------------------------------------------------------------
def test_each_load_is_cut_into_parts_that_add_up_to_it():
    run = results.load_run(H200X2)
    for reps in run.units.values():
        for e in (e for r in reps for e in r.events if e["kind"] == "load"):
            p = loads.parts(e)
            assert sum(p.values()) == pytest.approx(e["duration_s"], abs=1e-5)
            assert p["compile"] == e["breakdown"]["compile_s"] and p["startup"] > 0


def test_the_table_has_a_row_per_unit_model_and_cache_state():
    table = loads.build_loads(results.load_run(H200X2))
    rows = {(r.unit, r.model, r.cache): r for r in table.rows}
    assert rows["nosleep", "A", "miss"].n == 2 and rows["nosleep", "A", "hit"].n == 4
    assert ("l1", "A", "miss") not in rows and rows["l1", "A", "hit"].cache_keys == ("452dab6adc",)
    assert rows["l1-fp8", "B", "miss"].parts["compile"].median == pytest.approx((31.62 + 26.36) / 2)
    text = loads.loads_text(table)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert re.search(r"nosleep A\s+miss x2\s+93\.21", text)
    assert re.search(r"nosleep\s+A\s+miss\s+2\s+93\.21", loads.loads_text(table, wide=True))
    assert json.loads(loads.loads_text(table, "json")) == table.to_json()
    assert "(43.56..45.87)" in loads.markdown(table)


def test_kit_table_shows_the_breakdown_after_the_tables_and_alone(tmp_path, capsys):
    import shutil
    shutil.copytree(H200X2, tmp_path / H200X2.name)
    assert main(["table", H200X2.name, "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("Table 5:") < out.index("Load breakdown")
    assert main(["table", H200X2.name, "--results-dir", str(tmp_path), "--loads", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "loads" and len(doc["rows"]) == 14
    assert "loads.md" in results.table_texts(results.load_run(tmp_path / H200X2.name))


@pytest.mark.render
def test_the_figure_stacks_the_tables_part_medians(tmp_path):
    run = results.load_run(H200X2)
    table = loads.build_loads(run)
    spec = specs.loads_spec(run, table)
    assert len(spec.bars) == len(table.rows)
    for bar, row in zip(spec.bars, table.rows):
        assert [s["seconds"] for s in bar["segments"]] == [row.parts[p].median for p, _ in loads.PARTS]
        assert bar["load"] == row.load.to_json()
    from kit.plot import charts, style      # matplotlib: the render tier only
    paths = style.save(charts.loads_figure(spec), tmp_path / "loads")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in paths)


# -- the double and the workload (processes) --------------------------------------------------------------
def double_start(cache_root, *args, version="0.24.0"):
    """Start the double, let it come up, stop it; its output."""
    cmd = [sys.executable, str(DOUBLE), "--config", json.dumps({"vllm_version": version}), "--model", "m",
           "--host", "127.0.0.1", "--port", "0", "--max-num-seqs", "2", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, VLLM_CACHE_ROOT=str(cache_root)))
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Application startup complete" in line:
            break
    proc.terminate()
    proc.communicate(timeout=30)
    return "=== sleepkit: starting server A: double\n" + "".join(lines)


@pytest.mark.e2e
@pytest.mark.parametrize("version", ["0.24.0", "0.11.0"])
def test_the_double_misses_in_an_empty_cache_then_hits(tmp_path, version):
    first = serverlog.breakdown(double_start(tmp_path, "--enable-sleep-mode", version=version))
    again = serverlog.breakdown(double_start(tmp_path, "--enable-sleep-mode", version=version))
    assert (first["compile_cache"], again["compile_cache"]) == ("miss", "hit")
    assert first["cache_key"] == again["cache_key"]
    assert (tmp_path / "torch_compile_cache" / first["cache_key"] / "rank_0_0" / "backbone").is_dir()
    assert all(first[k] is not None for k in ("compile_s", "weights_s", "graphs_s", "engine_init_s"))
    # --enable-sleep-mode enters 0.24.0's key, not 0.11.0's
    other = serverlog.breakdown(double_start(tmp_path, version=version))
    assert other["compile_cache"] == ("miss" if version == "0.24.0" else "hit")


def test_the_doubles_key_follows_the_args_that_enter_vllms(monkeypatch):
    monkeypatch.syspath_prepend(str(DOUBLE.parent))
    import vllm_double
    assert vllm_double.COMPILE_KEY_ARGS == serverlog.COMPILE_KEY_ARGS
    base = ["--model", "m", "--max-model-len", "2048", "--max-num-seqs", "2", "--gpu-memory-utilization", "0.3",
            "--compilation-config", '{"cudagraph_mode": "FULL_AND_PIECEWISE"}', "--port", "1"]
    for version, names in serverlog.COMPILE_KEY_ARGS.items():
        key = vllm_double.compile_key(base, version)
        for name in names:
            changed = base + [name] if name in ("--enable-sleep-mode", "--trust-remote-code") else base + [name, "7"]
            if name == "--compilation-config":
                changed = base + [name, '{"level": 0}']
            assert vllm_double.compile_key(changed, version) != key, (version, name)
        for name in ("--gpu-memory-utilization", "--port", "--no-enable-prefix-caching"):
            assert vllm_double.compile_key(base + [name, "0.5"], version) == key
    cudagraphs = base + ["--compilation-config", '{"cudagraph_mode": "NONE"}']
    assert vllm_double.compile_key(cudagraphs, "0.11.0") == vllm_double.compile_key(base, "0.11.0")


@pytest.mark.e2e
def test_the_workload_puts_a_breakdown_on_every_load(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, VLLM_CACHE_ROOT=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "kit.workload", "--arm", "nosleep", "--out", str(out),
                           "--model-a", "ma", "--model-b", "mb", "--server-cmd", f"{sys.executable} {DOUBLE}"],
                          capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    loaded = [e for e in events.read(out / "events.jsonl") if e["kind"] == "load"]
    for model in ("A", "B"):
        mine = [e["breakdown"] for e in loaded if e["model"] == model]
        assert [b["compile_cache"] for b in mine] == ["miss", "hit", "hit"]
    for e in loaded:
        b = e["breakdown"]
        assert 0 < b["first_log_s"] < e["duration_s"] and b["engine_init_s"] > 0
        assert 0 < loads.parts(e)["startup"] < e["duration_s"]
