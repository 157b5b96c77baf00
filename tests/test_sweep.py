"""kit sweep: the fit estimate, the crossover, and the sweep end to end on the vLLM test double."""
import io
import json
import math
import re
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, kit, leftover_servers, only_run, server_cmd
from kit import sweep, twins
from kit.errors import BadInput
from kit.options import RunOptions
from kit.results import guide, metrics
from kit.workload import events, scenarios
from kit.workload.steps import Step, steps

# Published shapes (config.json of Qwen/Qwen3-8B and Qwen/Qwen3-32B differ from 0.6B's only in these sizes)
QWEN3_8B = dict(twins.twin_config("qwen3-0.6b"), hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                max_window_layers=36, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)
QWEN3_32B = dict(QWEN3_8B, hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, max_window_layers=64,
                 num_attention_heads=64)
# Qwen/Qwen3-30B-A3B's sizes (the MoE shape of the post's model B)
QWEN3_30B_A3B = dict(model_type="qwen3_moe", hidden_size=2048, num_hidden_layers=48, num_attention_heads=32,
                     num_key_value_heads=4, head_dim=128, intermediate_size=6144, moe_intermediate_size=768,
                     num_experts=128, decoder_sparse_step=1, mlp_only_layers=[], vocab_size=151936,
                     tie_word_embeddings=False, torch_dtype="bfloat16")


# -- the fit estimate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(twins.TWINS))
def test_parameter_count_from_config_matches_the_twins_counted_parameters(name):
    assert sweep.count_params(twins.twin_config(name)) == twins.TWINS[name].params


def test_parameter_counts_of_larger_published_shapes():
    assert 8.1e9 < sweep.count_params(QWEN3_8B) < 8.3e9            # "8.2B"
    assert 32.6e9 < sweep.count_params(QWEN3_32B) < 32.9e9         # "32.8B"
    assert 30.4e9 < sweep.count_params(QWEN3_30B_A3B) < 30.6e9     # "30.5B" total, experts included
    assert sweep.count_params({"model_type": "qwen3"}) is None


def test_estimate_of_qwen3_0_6b_and_the_fit_verdict():
    est = sweep.estimate(twins.twin_config("qwen3-0.6b"))
    assert est["params"] == 596_049_920 and est["dtype"] == "bfloat16"
    assert est["weights_gib"] == round(596_049_920 * 2 / 2**30, 3)
    # K and V x 28 layers x 8 KV heads x 128 x 2 bytes, for one 2048-token sequence
    assert est["kv_gib"] == round(2 * 28 * 8 * 128 * 2 * 2048 / 2**30, 3)
    assert est["utilization"] == float(scenarios.SWEEP_GPU_MEMORY_UTILIZATION) and est["max_model_len"] == 2048
    assert sweep.verdict(est, 80.0) == (True, None)
    fits, reason = sweep.verdict(est, 1.4)          # 0.9 x 1.4 GiB = 1.26 GiB < 1.33 GiB
    assert fits is False and "does not fit: needs about 1.3 GiB" in reason and "0.9 x 1.4 GiB = 1.3 GiB" in reason
    assert sweep.verdict(est, None) == (None, None)        # no GPU reading: nothing is skipped
    fp32 = sweep.estimate(dict(twins.twin_config("qwen3-0.6b"), torch_dtype="float32"))
    assert fp32["dtype"] == "float32" and fp32["weights_gib"] == round(596_049_920 * 4 / 2**30, 3)


def test_sweep_units_steps_and_bad_input():
    assert sweep.unit_name("Qwen/Qwen3-0.6B", 2) == "guide-qwen3-0.6b-l2"
    assert sweep.unit_name("/models/Qwen3-8B/", 1) == "guide-qwen3-8b-l1"
    seq = steps("sweep-l2")
    assert seq[:2] == [Step("load", "A", 0), Step("warmup", "A", 0)] and seq[-1] == Step("stop", "A", 3)
    assert seq[2:-1] == [Step(k, "A", r) for r in (1, 2, 3) for k in ("sleep", "wake", "prompt")]
    assert scenarios.ALL_ARMS["sweep-l1"].server_args()[:2] == ["--gpu-memory-utilization", "0.9"]
    with pytest.raises(BadInput, match="would both be named 'qwen3-8b'"):
        RunOptions(sweep_models=("/a/Qwen3-8B", "Qwen/Qwen3-8B"), sweep_levels=(1,)).check(here=False)
    with pytest.raises(BadInput, match="--levels '3'"):
        sweep.parse_levels("3")
    with pytest.raises(BadInput, match="corrected protocol only"):
        RunOptions(sweep_models=("Qwen/Qwen3-8B",), sweep_levels=(1,), protocol="seed").check()


# -- the crossover --------------------------------------------------------------------------------------
def _rows(switches, first=None):
    """Guide rows from {size B: (level-1 switch s, level-2 switch s)} (and the same for the first switch)."""
    cell = lambda s: metrics.Cell(s, s, s, 1)
    return [guide.GuideRow(f"m{size}", f"m{size}", size * 1e9, f"{size} B", level, f"m{size}-l{level}", "ok",
                           switch=cell(s), first_switch=cell((first or switches)[size][level - 1]))
            for size, pair in switches.items() for level, s in zip((1, 2), pair)]


def test_crossover_is_the_size_from_which_level_2_stays_faster():
    c = guide.crossover(_rows({0.6: (1.0, 2.0), 8: (5.0, 3.0), 32: (20.0, 9.0)}))
    assert c.size == "8 B" and c.text.startswith("later switches: crossover at 8 B (m8)")
    c = guide.crossover(_rows({0.6: (1.0, 2.0), 8: (2.0, 3.0)}))
    assert c.size is None and c.text.startswith("later switches: no crossover up to 8 B")
    c = guide.crossover(_rows({0.6: (1.0, 2.0), 8: (5.0, 3.0), 32: (8.0, 9.0)}))     # faster at 8 B only
    assert c.size is None and "faster at 8 B only" in c.text
    c = guide.crossover(_rows({0.6: (3.0, 2.0), 8: (5.0, 3.0)}))
    assert c.size == "0.6 B" and c.text.startswith("later switches: no crossover: level 2's switch is faster")
    assert guide.crossover([]).text == "later switches: crossover: not measured (it needs levels 1 and 2 of at least one model)"


def test_the_first_switch_has_its_own_crossover():
    # level 1's first sleep also allocates the pinned host buffers: slow at every size, so level 2 wins the
    # first switch everywhere while level 1 wins the later ones up to 8 B
    rows = _rows({0.6: (1.0, 2.0), 8: (2.0, 3.0)}, first={0.6: (3.0, 2.0), 8: (12.0, 3.0)})
    later, first = guide.crossover(rows), guide.crossover(rows, "first_switch")
    assert later.size is None and [p.faster for p in later.pairs] == [1, 1]
    assert first.size == "0.6 B" and [p.faster for p in first.pairs] == [2, 2]
    assert first.text.startswith("first switch: no crossover: level 2's switch is faster than level 1's at every size")
    assert [(p.l1_s, p.l2_s) for p in first.pairs] == [(3.0, 2.0), (12.0, 3.0)]


# -- end to end on the test double -------------------------------------------------------------------------
# Level 1 moves the weights (its sleep and wake grow with size); level 2 drops them and reloads (its reload
# is what grows): set so that level 2's switch is faster from the 8B shape on, by margins far above noise.
# A server's first level-1 sleep also pins its host buffers ("pin_1"): slow enough that level 2 wins every
# first switch, while level 1 wins the later ones below 8B.
MODELS = {"qwen3-0.6b": (twins.twin_config("qwen3-0.6b"), 32, {"sleep_1": 0.05, "wake": 0.05, "reload": 0.7,
                                                               "pin_1": 1.2}),
          "phi-3-mini": (twins.twin_config("phi-3-mini"), 64, {"sleep_1": 0.3, "wake": 0.2, "reload": 1.2,
                                                               "pin_1": 1.5}),
          "qwen3-8b": (QWEN3_8B, 128, {"sleep_1": 2.0, "wake": 0.4, "reload": 0.3}),
          "qwen3-32b": (QWEN3_32B, 256, None)}
MARKER = "sweep-e2e"


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for name, (cfg, _, _) in MODELS.items():
        (root / "models" / name).mkdir(parents=True)
        (root / "models" / name / "config.json").write_text(json.dumps(cfg))
    config = {"marker": MARKER, "models": {n: {"weights_mib": w, "delays": dict(d, sleep_2=0.03)}
                                           for n, (_, w, d) in MODELS.items() if d}}     # none for the 32B
    given = ",".join(str(root / "models" / n) for n in ("qwen3-8b", "qwen3-32b", "qwen3-0.6b", "phi-3-mini"))
    r = kit("sweep", "--models", given, "--gpu-memory-gib", "40", "--runtime", "local", "--results-dir",
            root / "results", "--server-cmd", server_cmd(config), timeout=400)
    return r, only_run(root / "results")


@pytest.mark.e2e
def test_sweep_end_to_end_reports_the_crossover(sweep_run):
    r, run = sweep_run
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.fullmatch(r"\d{8}-\d{6}-guide", run.name)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] and manifest["units"] == [f"guide-{m}-l{level}" for m in ("qwen3-8b", "qwen3-0.6b",
                                                                                           "phi-3-mini") for level in (1, 2)]
    g = json.loads((run / "tables" / "guide.json").read_text())
    assert [(row["slug"], row["level"]) for row in g["rows"]][:6] == [
        (m, level) for m in ("qwen3-0.6b", "phi-3-mini", "qwen3-8b") for level in (1, 2)]   # smallest first
    assert g["crossover"]["model"] == "qwen3-8b" and g["crossover"]["size"] == "8.19 B"
    assert [p["faster"] for p in g["crossover"]["pairs"]] == [1, 1, 2]
    assert [p["faster"] for p in g["first_crossover"]["pairs"]] == [2, 2, 2] and g["first_crossover"]["size"] == "0.60 B"
    ram = {x["size"]: x["gib"] for x in g["level1_ram"]}
    assert ram["8.19 B"] >= 0.9 * 128 / 1024 and ram["0.60 B"] < ram["8.19 B"]      # the double's pinned copy
    l2 = next(row for row in g["rows"] if row["unit"] == "guide-qwen3-8b-l2")
    assert l2["state"] == "ok" and l2["ram_held_gib"]["median"] < 0.25 * 128 / 1024
    assert "crossover at 8.19 B (qwen3-8b)" in r.stdout and "skipped" in r.stdout
    assert not leftover_servers(MARKER)


@pytest.mark.e2e
def test_a_model_that_does_not_fit_is_skipped_before_any_server_starts(sweep_run):
    r, run = sweep_run
    manifest = json.loads((run / "manifest.json").read_text())
    entry = {m["slug"]: m for m in manifest["sweep"]["models"]}
    assert entry["qwen3-32b"]["fits"] is False and entry["qwen3-8b"]["fits"] is True
    assert entry["qwen3-32b"]["skipped"].startswith("does not fit: needs about 61.5 GiB")
    assert manifest["sweep"]["gpu_memory_source"] == "--gpu-memory-gib"
    assert not list(run.glob("guide-qwen3-32b-*"))
    logs = [p.read_text() for p in run.rglob("server-*.log")]
    assert len(logs) == 6 and not any("qwen3-32b" in log for log in logs)     # not even its name
    assert "qwen3-32b" not in (run / "guide-qwen3-8b-l1" / "r1" / "workload.log").read_text()
    g = json.loads((run / "tables" / "guide.json").read_text())
    assert [s["size"] for s in g["skipped"]] == ["32.76 B"]
    assert {row["state"] for row in g["rows"] if row["slug"] == "qwen3-32b"} == {"skipped"}


@pytest.mark.e2e
def test_sweep_units_run_the_arms_sequence_and_level_2_wakes_as_the_l2_arm(sweep_run):
    _, run = sweep_run
    for unit, level in (("guide-qwen3-0.6b-l1", 1), ("guide-qwen3-0.6b-l2", 2)):
        evs = events.read(run / unit / "r1" / "events.jsonl")
        assert [(e["kind"], e["model"], e["round"]) for e in evs] == [
            (s.kind, s.model, s.round) for s in steps(f"sweep-l{level}")] + [("total", None, 0)]
        assert all(e["arm"] == unit and e["ok"] for e in evs)
        for e in evs:
            assert all(c["ok"] is not False for c in e.get("checks") or []), e
        assert {e["level"] for e in evs if e["kind"] in ("sleep", "wake")} == {level}
    wakes = [e for e in events.read(run / "guide-qwen3-0.6b-l2" / "r1" / "events.jsonl") if e["kind"] == "wake"]
    assert all(set(e["parts"]) == {"wake_up", "reload_weights", "reset_prefix_cache", "warmup"} for e in wakes)
    log = (run / "guide-qwen3-0.6b-l2" / "r1" / "server-A.log").read_text()
    requests = re.findall(r"^DOUBLE-REQUEST (\S+ \S+)", log, re.M)
    wake = requests.index("POST /wake_up")
    assert requests[wake:wake + 4] == ["POST /wake_up", "POST /collective_rpc", "POST /reset_prefix_cache",
                                       "POST /v1/chat/completions"]
    assert "--gpu-memory-utilization 0.9" in log
    # --cache warm: each model primed once on the lane (its l1 unit), its l2 unit found it primed
    jobs = {j["unit"]: j for j in json.loads((run / "manifest.json").read_text())["jobs"]}
    assert jobs["guide-qwen3-0.6b-l1"]["priming"]["ok"] and len(jobs["guide-qwen3-0.6b-l1"]["priming"]["loads"]) == 1
    assert jobs["guide-qwen3-0.6b-l2"]["priming"] is None


@pytest.mark.e2e
def test_sweep_table_plot_bundle_and_verify(sweep_run, tmp_path):
    _, run = sweep_run
    results = run.parent
    shown = kit("table", run.name, "--results-dir", results)
    assert shown.returncode == 0 and "Guide: which sleep level" in shown.stdout and "crossover at 8.19 B" in shown.stdout
    assert kit("table", run.name, "--results-dir", results, "--format", "json").stdout == \
        (run / "tables" / "guide.json").read_text()
    made = kit("bundle", run.name, "--results-dir", results, timeout=300)
    assert made.returncode == 0, made.stderr
    bundle = Path(made.stdout.strip())
    assert (run / "figures" / "guide.png").exists()
    ok = kit("bundle", "verify", bundle)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": ok"), ok.stdout
    # a guide edited after the run no longer matches the one re-rendered from the events
    tampered = tmp_path / bundle.name
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("tables/guide.md"):
                data = data.replace(b"crossover at", b"crossover near")
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    bad = kit("bundle", "verify", tampered)
    assert bad.returncode == 1 and "checksum mismatch (file changed)" in bad.stdout and "guide differs" in bad.stdout


# -- the bandwidth bound, on a made-up run with a GPU ----------------------------------------------------------
def _events(level, sleep_s, wake_s, backed_gib, first_sleep_s=None):
    evs, gpu, rss = [], 70_000, 2_000
    for r in (1, 2, 3):
        held = 15_360 if level == 1 and r == 1 else 0             # the first level-1 sleep pins 15 GiB
        took = first_sleep_s if r == 1 and first_sleep_s is not None else sleep_s
        evs.append({"kind": "sleep", "model": "A", "round": r, "duration_s": took, "ok": True, "level": level,
                    "gpu_mib_before": gpu, "gpu_mib_after": gpu - 60_000, "rss_mib_before": rss,
                    "rss_mib_after": rss + held,
                    "checks": [{"check": "engine_log", "ok": True,
                                "detail": f"engine: {backed_gib if level == 1 else 0:.2f} GiB backed up in CPU"}]})
        rss += held
        evs.append({"kind": "wake", "model": "A", "round": r, "duration_s": wake_s, "ok": True, "level": level})
        evs.append({"kind": "prompt", "model": "A", "round": r, "duration_s": 0.5, "ok": True, "ttft_s": 0.02})
    return evs


def test_guide_sets_sleep_and_wake_against_the_bandwidth_bound(tmp_path):
    from kit.results.load import Repeat, Run
    entry = {"name": "/m/qwen3-8b", "slug": "qwen3-8b", "estimate": sweep.estimate(QWEN3_8B), "fits": True,
             "skipped": None, "units": {"1": "guide-qwen3-8b-l1", "2": "guide-qwen3-8b-l2"}}
    manifest = {"run_id": "r", "complete": True, "h2d": {"gpu 0": 20.0},
                "sweep": {"levels": [1, 2], "gpu_memory_gib": 79.2, "gpu_memory_source": "NVML, GPU 0",
                          "server_args": scenarios.SWEEP_SERVER_ARGS, "models": [entry]}}
    env = {"h2d_gbps": 20.0, "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}
    units = {"guide-qwen3-8b-l1": [Repeat(1, _events(1, 2.0, 1.5, 15.0, first_sleep_s=9.0), {"ok": True}, env)],
             "guide-qwen3-8b-l2": [Repeat(1, _events(2, 0.3, 1.2, 0), {"ok": True}, env)]}
    run = Run(tmp_path, manifest, RunOptions(sweep_models=("/m/qwen3-8b",), sweep_levels=(1, 2)), units)
    g = guide.build_guide(run)
    l1, l2 = g.rows
    bound = 15.0 * 2**30 / 20e9                     # 15 GiB at 20 GB/s: 0.81 s each way
    assert l1.moved_gib == l2.moved_gib == 15.0 and l1.moved_source == "engine log"
    assert l1.bound_s == pytest.approx(bound, abs=1e-6)
    assert l1.wake_x_bound == pytest.approx(1.5 / bound, abs=1e-6)
    assert l1.sleep_x_bound == pytest.approx(2.0 / bound, abs=1e-6)
    assert l2.wake_x_bound == pytest.approx(1.2 / bound, abs=1e-6) and l2.sleep_x_bound is None
    assert l1.ram_held_gib.median == 15.0 and l2.ram_held_gib.median == 0
    assert l1.gpu_freed_gib.median == pytest.approx(60_000 / 1024, abs=1e-3)
    assert l1.switch.median == 3.5 and l2.switch.median == 1.5            # the later cycles: round 1 left out
    assert l1.first_switch.median == 10.5 and l1.first_sleep.median == 9.0 and l2.first_switch.median == 1.5
    assert g.crossover.model == "qwen3-8b" and g.crossover.text.startswith("later switches: no crossover: level 2")
    assert g.first_crossover.model == "qwen3-8b" and g.first_crossover.pairs[0].l1_s == 10.5
    text = guide.text(g, "terminal", None)
    assert "wake against the host->GPU bound: 8.19 B L1 wake 1.86x; 8.19 B L2 wake 1.49x" in text
    assert "level 1 holds in host RAM while asleep: 8.19 B 15.00 GiB" in text
    assert "gpu 0 20.0 GB/s" in text
    from kit import plot
    from kit.plot import specs
    spec = specs.guide_spec(run, g)          # the figure's numbers are the guide's; level 1's bound is out and back
    bars = {b["level"]: b for b in spec.bars}
    assert bars[1]["bound_s"] == pytest.approx(2 * bound, abs=1e-6) and bars[2]["bound_s"] == pytest.approx(bound, abs=1e-6)
    assert (bars[1]["sleep"], bars[1]["wake"], bars[1]["ram_gib"], bars[1]["first_switch"]) == (2.0, 1.5, 15.0, 10.5)
    assert plot.figure_stems(run, []) == ["loads", "guide"]
    from kit.site import figures as site_figures      # the site draws the same figures, the guide among them
    shown = site_figures.run_figures(run, {})
    assert [f.stem for f in shown] == ["loads", "guide"] and "level 1 and 2" in shown[1].alt
    assert b"<svg" in site_figures.draw(shown[1].plot, tmp_path / shown[1].name).read_bytes()[:2000]
    assert "SUSPECT" not in _guide_svg(spec, tmp_path / "plain")
    from dataclasses import replace     # a unit whose sleep check failed keeps its bars, marked
    suspect = specs.guide_spec(run, replace(g, rows=(replace(l1, state="suspect"), l2)))
    assert [b["suspect"] for b in suspect.bars] == [True, False]
    assert _guide_svg(suspect, tmp_path / "suspect").count(">SUSPECT<") == 1


def _guide_svg(spec, stem):
    from kit.plot import charts, style
    return style.save(charts.guide_figure(spec), stem, ("svg",))[0].read_text()


@pytest.mark.e2e
def test_an_interrupted_sweep_resumes_with_its_own_models_and_fit(sweep_run, tmp_path):
    import shutil
    _, run = sweep_run
    results = tmp_path / "results"
    copy = shutil.copytree(run, results / run.name)
    shutil.rmtree(copy / "guide-phi-3-mini-l2")                       # as if stopped before its last job
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(complete=False, jobs=[j for j in manifest["jobs"] if j["unit"] != "guide-phi-3-mini-l2"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    refused = kit("sweep", "--resume", run.name, "--models", "x/y", "--results-dir", results)
    assert refused.returncode == 2 and "give none of them" in refused.stderr
    r = kit("sweep", "--resume", run.name, "--results-dir", results, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 of 6 jobs to run (guide-phi-3-mini-l2 r1)" in r.stdout and "crossover at 8.19 B" in r.stdout
    after = json.loads((copy / "manifest.json").read_text())
    assert after["complete"] is True and after["sweep"] == manifest["sweep"]       # the fit is not redone
    assert (copy / "guide-phi-3-mini-l2" / "r1" / "events.jsonl").exists() and not list(copy.glob("guide-qwen3-32b-*"))


def test_resuming_a_complete_sweep_changes_nothing(tmp_path, capsys):
    """The reference sweep's first unit, as a sweep of that one model and level: complete, so nothing to run."""
    import shutil
    from kit.cli import main
    run = shutil.copytree(ROOT / "results" / "reference" / "h100-vllm0.24.0-guide", tmp_path / "one")
    record = json.loads((run / "manifest.json").read_text())
    record["options"].update(sweep_models=record["options"]["sweep_models"][:1], sweep_levels=[1])
    record["sweep"].update(models=record["sweep"]["models"][:1], levels=[1])
    (run / "manifest.json").write_text(json.dumps(dict(record, complete=True)))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["sweep", "--resume", "one", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "run one is complete: nothing to resume, nothing changed (its tables: `kit table one`)\n"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


class _Mem:
    def __init__(self, free_gib, total_gib=80.0):
        self.free, self.total = free_gib * 2**30, total_gib * 2**30


@pytest.mark.parametrize("arm, share", [("sweep-l1", 0.9), ("sweep-l2", 0.9), ("l1", 0.6), ("nosleep", 0.3)])
def test_each_arm_needs_the_gpu_share_its_servers_hold_at_once(arm, share):
    assert scenarios.ALL_ARMS[arm].gpu_share() == pytest.approx(share)


def test_a_gpu_free_enough_for_the_study_is_busy_for_a_sweep(monkeypatch):
    from kit import gpus
    monkeypatch.setattr(gpus, "_memory", lambda gpu: _Mem(free_gib=56.0))   # 70 % free
    gpu = gpus.Gpu(id="0", index=0)
    assert gpus.busy_reason(gpu, scenarios.ALL_ARMS["l1"].gpu_share()) is None
    reason = gpus.busy_reason(gpu, scenarios.ALL_ARMS["sweep-l1"].gpu_share())
    assert reason and "56.0 of 80.0 GiB free" in reason and "90%" in reason


def test_the_fit_is_not_read_where_the_runtime_places_the_jobs():
    opts = RunOptions(runtime="slurm", sweep_models=("Qwen/Qwen3-0.6B",), sweep_levels=(1,))
    assert sweep.gpu_memory(opts, None) == (None, "not read: the slurm runtime places the jobs (give "
                                            "--gpu-memory-gib to skip models that do not fit)")
    assert sweep.gpu_memory(RunOptions(**{**vars(opts), "gpu_memory_gib": 40.0}), None) == (40.0, "--gpu-memory-gib")


# -- growing a sweep run: kit sweep --resume RUN_ID --add-models ---------------------------------------------
REFERENCE_GUIDE = ROOT / "results" / "reference" / "h100-vllm0.24.0-guide"


def _model_folder(root, name, cfg):
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps(cfg))
    return root / name


@pytest.fixture(scope="module")
def grown(sweep_run, tmp_path_factory):
    """The finished sweep, copied with its model folders gone (a later session on another host), grown by a
    1.7B model that fits and a 32B one that does not fit 40 GiB."""
    import shutil
    _, run = sweep_run
    tmp = tmp_path_factory.mktemp("grown")
    text = (run / "manifest.json").read_text().replace(str(run.parent.parent / "models"), str(tmp / "gone"))
    copy = shutil.copytree(run, tmp / "results" / run.name)
    (copy / "manifest.json").write_text(text)
    before = json.loads(text)
    added = [_model_folder(tmp / "new", "qwen3-1.7b", twins.twin_config("qwen3-1.7b")),
             _model_folder(tmp / "new", "big-32b", QWEN3_32B)]
    r = kit("sweep", "--resume", run.name, "--add-models", ",".join(map(str, added)), "--gpu-memory-gib", "40",
            "--results-dir", tmp / "results", timeout=300)
    return r, copy, before, added


@pytest.mark.e2e
def test_models_added_to_a_finished_sweep_run_and_join_its_guide(grown):
    r, copy, before, (small, big) = grown
    assert r.returncode == 0, r.stdout + r.stderr
    assert all("/gone/" in m for m in before["options"]["sweep_models"])    # done: their folders need not be here
    assert "2 of 8 jobs to run (guide-qwen3-1.7b-l1 r1, guide-qwen3-1.7b-l2 r1)" in r.stdout
    after = json.loads((copy / "manifest.json").read_text())
    assert after["complete"] is True
    assert after["units"] == before["units"] + ["guide-qwen3-1.7b-l1", "guide-qwen3-1.7b-l2"]
    assert after["options"]["sweep_models"] == before["options"]["sweep_models"] + [str(small), str(big)]
    part, first = after["sweep"], before["sweep"]
    assert part["models"][:4] == first["models"]          # the first models keep their fit, and the run's fields
    assert (part["gpu_memory_gib"], part["gpu_memory_source"]) == (40.0, "--gpu-memory-gib")
    new = {m["slug"]: m for m in part["models"][4:]}
    for m in new.values():      # when, by which command, and against which GPU memory each was added
        assert m["added"]["command"][1:5] == ["sweep", "--resume", copy.name, "--add-models"]
        assert (m["added"]["gpu_memory_gib"], m["added"]["gpu_memory_source"]) == (40.0, "--gpu-memory-gib")
        assert m["added"]["at"] >= before["ended"]
    assert new["qwen3-1.7b"]["fits"] is True and new["qwen3-1.7b"]["skipped"] is None
    assert "guide-qwen3-1.7b-l2" in after["server_args"] and len(after["resumes"]) == 1
    assert {j["unit"] for j in after["jobs"]} == set(after["units"])
    g = json.loads((copy / "tables" / "guide.json").read_text())
    assert [row["slug"] for row in g["rows"] if row["level"] == 1] == [
        "qwen3-0.6b", "qwen3-1.7b", "phi-3-mini", "qwen3-8b", "qwen3-32b", "big-32b"]     # size order
    assert all(row["state"] == "ok" and row["switch"] for row in g["rows"] if row["slug"] == "qwen3-1.7b")
    assert [a["models"] for a in g["run"]["added"]] == [["qwen3-1.7b", "big-32b"]]
    md = (copy / "tables" / "guide.md").read_text()
    assert "qwen3-1.7b, big-32b; fit against GPU memory 40.0 GiB, --gpu-memory-gib" in md
    assert "the run's jobs ran on" not in md        # one GPU (the double's: none) throughout
    again = kit("sweep", "--resume", copy.name, "--results-dir", copy.parent)        # a plain resume: as before
    assert again.returncode == 0 and "is complete: nothing to resume" in again.stdout


@pytest.mark.e2e
def test_an_added_model_that_does_not_fit_is_skipped_with_its_reason(grown):
    r, copy, _, (_, big) = grown
    entry = next(m for m in json.loads((copy / "manifest.json").read_text())["sweep"]["models"] if m["slug"] == "big-32b")
    assert entry["fits"] is False and entry["skipped"].startswith("does not fit: needs about 61.5 GiB")
    assert "0.9 x 40.0 GiB = 36.0 GiB" in entry["skipped"]
    assert not list(copy.glob("guide-big-32b-*"))
    assert f"skipped {big} (32.76 B): does not fit" in r.stdout.replace("\n  ", " ")


@pytest.mark.e2e
def test_a_grown_sweep_run_bundles_and_verifies(grown):
    _, copy, _, _ = grown
    made = kit("bundle", copy.name, "--results-dir", copy.parent, "--no-figures", timeout=300)
    assert made.returncode == 0, made.stderr
    ok = kit("bundle", "verify", made.stdout.strip())
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": ok"), ok.stdout


def _reference_copy(tmp_path, unfinished=None):
    """A copy of the reference sweep as run "one" (with the unit `unfinished` as if stopped before it) and its
    files' bytes."""
    import shutil
    run = shutil.copytree(REFERENCE_GUIDE, tmp_path / "results" / "one")
    if unfinished:
        shutil.rmtree(run / unfinished)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest.update(complete=False, jobs=[j for j in manifest["jobs"] if j["unit"] != unfinished])
        (run / "manifest.json").write_text(json.dumps(manifest))
    return run, {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_bundling_an_incomplete_sweep_names_kit_sweep_resume(tmp_path):
    from kit import bundle
    run, _ = _reference_copy(tmp_path)
    data = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(dict(data, complete=False)))
    with pytest.raises(BadInput, match="incomplete") as refused:
        bundle.make_bundle(run)
    assert " sweep --resume one --results-dir " in refused.value.hint


def test_an_added_model_that_collides_with_the_runs_is_refused_and_nothing_changes(tmp_path, capsys):
    from kit.cli import main
    run, before = _reference_copy(tmp_path)
    new = _model_folder(tmp_path / "new", "qwen3-14b-base", twins.twin_config("qwen3-14b"))
    code = main(["sweep", "--resume", "one", "--add-models", f"{new},Qwen/Qwen3-4B", "--results-dir", str(run.parent)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--add-models Qwen/Qwen3-4B collides with the run's model /root/sk/twins/qwen3-4b: both would be named " \
           "'qwen3-4b'" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_dry_run_of_added_models_prints_their_fit_and_plan_and_starts_nothing(tmp_path, capsys):
    from kit.cli import main
    run, before = _reference_copy(tmp_path)
    new = [_model_folder(tmp_path / "new", f"{name}-base", twins.twin_config(name)) for name in ("qwen3-14b", "qwen3-32b")]
    code = main(["sweep", "--resume", "one", "--add-models", ",".join(map(str, new)), "--gpu-memory-gib", "40",
                 "--dry-run", "--results-dir", str(run.parent)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[:2] == ["sweep one, adding 2 model(s): levels 1, 2; GPU memory 40.0 GiB (--gpu-memory-gib)",
                       f"  {new[0]}: 14.77 B params, about 27.8 GiB: fits"]
    assert out[2].startswith(f"  {new[1]}: 32.76 B params, about 61.5 GiB: SKIPPED, does not fit")
    plan = next(line for line in out if line.startswith("plan:"))
    assert "2 job(s)" in plan and "guide-qwen3-14b-base-l2 r1" in plan and "qwen3-32b-base" not in plan
    assert "guide-qwen3-0.6b-l1 r1" not in plan and out[-1] == "dry run: nothing started"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_added_models_are_fitted_against_this_hosts_gpu_and_make_the_run_incomplete(tmp_path, monkeypatch):
    """A complete run grown on a 24 GiB GPU (NVML): its first models keep their fit (80 GiB), the 14B says which
    GPU memory skipped it."""
    from kit import gpus, manifest
    from kit.runtimes.base import Runtime
    run, _ = _reference_copy(tmp_path)
    record = manifest.read(manifest.layout.RunDir(run))
    record.complete = True
    monkeypatch.setattr(Runtime, "host_gpus", classmethod(lambda cls, options: [gpus.Gpu(id="0", index=0)]))
    monkeypatch.setattr(gpus, "_memory", lambda gpu: _Mem(free_gib=24.0, total_gib=24.0))
    new = [_model_folder(tmp_path / "new", name, twins.twin_config(twin))
           for name, twin in (("qwen3-14b-base", "qwen3-14b"), ("qwen3-1.7b-base", "qwen3-1.7b"))]
    entries = manifest.add_sweep_models(record, sweep.Addition(tuple(map(str, new))), ["kit", "sweep"])
    assert [e["added"]["gpu_memory_source"] for e in entries] == ["NVML, GPU 0"] * 2
    assert entries[0]["skipped"].endswith("0.9 x 24.0 GiB = 21.6 GiB") and entries[1]["fits"] is True
    assert record.sweep["gpu_memory_gib"] == 79.647 and record.complete is False
    assert record.units[-2:] == ["guide-qwen3-1.7b-base-l1", "guide-qwen3-1.7b-base-l2"]
    assert sweep.fit_memory(record.sweep, record.sweep["models"][0]) == (79.647, "NVML, GPU 0")
    assert sweep.fit_memory(record.sweep, entries[0]) == (24.0, "NVML, GPU 0")


def test_the_guide_of_a_run_grown_on_another_gpu_says_where_each_fit_and_job_came_from(tmp_path):
    from kit.results.load import Repeat, Run

    def entry(slug, cfg, **more):
        return {"name": f"/m/{slug}", "slug": slug, "estimate": sweep.estimate(cfg), "fits": True, "skipped": None,
                "units": {"1": f"guide-{slug}-l1"}, **more}
    added = {"at": "2026-07-20T10:00:00Z", "command": ["kit", "sweep"], "gpu_memory_gib": 139.8,
             "gpu_memory_source": "NVML, GPU 0"}
    jobs = [{"unit": "guide-qwen3-32b-l1", "repeat": 1, "host": "h200", "gpu": {"uuid": "GPU-b"}},
            {"unit": "guide-qwen3-8b-l1", "repeat": 1, "host": "h100", "gpu": {"uuid": "GPU-a"}}]
    manifest = {"run_id": "r", "complete": True, "h2d": {"gpu 0": 50.0}, "jobs": jobs,
                "sweep": {"levels": [1], "gpu_memory_gib": 79.6, "gpu_memory_source": "NVML, GPU 0",
                          "server_args": scenarios.SWEEP_SERVER_ARGS,
                          "models": [entry("qwen3-32b", QWEN3_32B, added=added), entry("qwen3-8b", QWEN3_8B)]}}
    env = {"h2d_gbps": 50.0}
    units = {f"guide-{s}-l1": [Repeat(1, _events(1, 2.0, 1.5, 15.0), {"ok": True}, env)] for s in ("qwen3-32b", "qwen3-8b")}
    g = guide.build_guide(Run(tmp_path, manifest, RunOptions(sweep_models=("/m/qwen3-32b", "/m/qwen3-8b"), sweep_levels=(1,)),
                              units))
    assert [r.slug for r in g.rows] == ["qwen3-8b", "qwen3-32b"]
    text = guide.text(g, "plain")
    assert "fit: --gpu-memory-utilization 0.9 x GPU memory (79.6 GiB, NVML, GPU 0)" in text
    assert "added 2026-07-20T10:00:00Z: qwen3-32b; fit against GPU memory 139.8 GiB, NVML, GPU 0" in text
    assert "the run's jobs ran on 2 different GPUs" in text
    manifest["sweep"]["models"][0].pop("added")
    manifest["jobs"][0].update(host="h100", gpu={"uuid": "GPU-a"})
    g = guide.build_guide(Run(tmp_path, manifest, RunOptions(sweep_models=("/m/qwen3-32b", "/m/qwen3-8b"), sweep_levels=(1,)),
                              units))
    text = guide.text(g, "plain")
    assert "added" not in g.run and "\nadded " not in text and "different GPUs" not in text


# -- the host->GPU bandwidth of each device: a sweep grown on another GPU measures there ---------------------------
FAKE_TORCH = '''"""torch as kit.workload.runner's H2D_SCRIPT uses it: a copy at FAKE_H2D_GBPS."""
import os
import types

uint8 = "uint8"
version = types.SimpleNamespace(cuda="12.8")


class _Tensor:
    def copy_(self, other, non_blocking=False):
        return self


def empty(n, **kw):
    return _Tensor()


class _Event:
    def __init__(self, enable_timing=False):
        pass

    def record(self):
        pass

    def elapsed_time(self, end):      # ms to copy the script's 1 GiB
        return (1 << 30) / (float(os.environ["FAKE_H2D_GBPS"]) * 1e9) * 1e3


cuda = types.SimpleNamespace(is_available=lambda: True, synchronize=lambda: None, Event=_Event)
'''


def _on_device(monkeypatch, host, uuid, gbps, commit):
    """This process runs as if on `host` with one GPU (NVML's uuid), whose copy measures gbps; the kit at commit."""
    import socket

    from kit import gpus
    monkeypatch.setattr(gpus, "nvml_gpus", lambda: [gpus.Gpu("0", 0, uuid, "Fake GPU", 0)])
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    monkeypatch.setenv("FAKE_H2D_GBPS", str(gbps))
    monkeypatch.setenv("SLEEPKIT_GIT_COMMIT", commit)


@pytest.mark.e2e
def test_a_sweep_grown_on_another_gpu_measures_there_and_each_bound_uses_its_gpus_bandwidth(tmp_path, monkeypatch):
    from kit.cli import main
    (tmp_path / "fake" / "torch.py").parent.mkdir()
    (tmp_path / "fake" / "torch.py").write_text(FAKE_TORCH)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))          # the workload's h2d probe imports it
    first, second = (_model_folder(tmp_path / "models", name, twins.twin_config(name)) for name in ("qwen3-0.6b", "qwen3-1.7b"))
    results = tmp_path / "results"
    cmd = ["--runtime", "local", "--results-dir", str(results), "--cache", "shared", "--gpu-memory-gib", "40",
           "--server-cmd", server_cmd({"marker": "sweep-h2d"})]
    _on_device(monkeypatch, "host-a", "GPU-aaaa", 50.0, "commit-a")
    assert main(["sweep", "--models", str(first), "--levels", "1", "--run-id", "grown", *cmd]) == 0
    _on_device(monkeypatch, "host-b", "GPU-bbbb", 40.0, "commit-b")
    assert main(["sweep", "--resume", "grown", "--add-models", str(second), *cmd[:4], "--gpu-memory-gib", "40"]) == 0
    m = json.loads((results / "grown" / "manifest.json").read_text())
    assert m["h2d"] == {"host-a/GPU-aaaa": 50.0, "host-b/GPU-bbbb": 40.0}       # measured again on the new GPU
    assert m["git_commit"] == "commit-a" and [r["git_commit"] for r in m["resumes"]] == ["commit-b"]
    g = json.loads((results / "grown" / "tables" / "guide.json").read_text())
    rows = {r["slug"]: r for r in g["rows"]}
    assert rows["qwen3-0.6b"]["h2d_gbps"] == 50.0 and rows["qwen3-1.7b"]["h2d_gbps"] == 40.0
    for r in rows.values():
        assert r["bound_s"] == pytest.approx(r["moved_gib"] * 2**30 / (r["h2d_gbps"] * 1e9), rel=1e-3)
    shown = (results / "grown" / "tables" / "guide.md").read_text()
    assert "host->GPU host-a GPU-aaaa 50.0 GB/s, host-b GPU-bbbb 40.0 GB/s" in shown
    assert "a bound uses that of the GPU its unit ran on" in shown and "no bound for" not in shown
    assert not leftover_servers("sweep-h2d")


def test_an_old_manifest_resumed_on_another_gpu_gives_that_gpus_units_no_bound():
    """Schema 2 keyed "h2d" by lane and measured once per lane: "gpu 0"'s number was measured on the first GPU,
    so the unit resumed on a second GPU under the same lane has no bound, and the guide says why."""
    from kit import manifest
    from kit.results.load import Repeat, Run

    def entry(slug, cfg):
        return {"name": f"/m/{slug}", "slug": slug, "estimate": sweep.estimate(cfg), "fits": True, "skipped": None,
                "units": {"1": f"guide-{slug}-l1"}}

    def job(slug, started, uuid):
        return {"unit": f"guide-{slug}-l1", "repeat": 1, "lane": "gpu 0", "host": "vm", "started": started,
                "gpu": {"id": "0", "index": 0, "uuid": uuid, "name": "NVIDIA H100 80GB HBM3"}}
    data = {"schema": 2, "run_id": "r", "complete": True, "h2d": {"gpu 0": 50.0},
            "jobs": [job("qwen3-8b", "2026-07-20T09:00:00Z", "GPU-a"), job("qwen3-32b", "2026-07-20T11:00:00Z", "GPU-b")],
            "resumes": [{"at": "2026-07-20T10:00:00Z", "command": ["kit", "sweep", "--resume", "r"]}],
            "sweep": {"levels": [1], "gpu_memory_gib": 79.6, "gpu_memory_source": "NVML, GPU 0",
                      "server_args": scenarios.SWEEP_SERVER_ARGS,
                      "models": [entry("qwen3-8b", QWEN3_8B), entry("qwen3-32b", QWEN3_32B)]}}
    assert manifest.h2d_by_device(data) == {"vm/GPU-a": 50.0}
    env = {"h2d_gbps": None}       # the measuring job's own env.json is not needed: the manifest's number serves
    units = {f"guide-{s}-l1": [Repeat(1, _events(1, 2.0, 1.5, 15.0), {"ok": True}, env)] for s in ("qwen3-32b", "qwen3-8b")}
    g = guide.build_guide(Run(Path("r"), data, RunOptions(sweep_models=("/m/qwen3-8b", "/m/qwen3-32b"), sweep_levels=(1,)),
                              units))
    rows = {r.slug: r for r in g.rows}
    assert rows["qwen3-8b"].h2d_gbps == 50.0 and rows["qwen3-8b"].bound_s
    assert rows["qwen3-32b"].h2d_gbps is None and rows["qwen3-32b"].bound_s is None and rows["qwen3-32b"].wake
    assert any(n.startswith("no bound for guide-qwen3-32b-l1: host->GPU GB/s none was measured on the GPU")
               for n in g.notes)
    assert "host->GPU vm GPU-a 50.0 GB/s" in guide.text(g, "plain")
    # the lane's first recorded job came after a resume: which device measured cannot be told, so neither gets it
    data["jobs"][0]["started"] = "2026-07-20T10:30:00Z"
    assert manifest.h2d_by_device(data) == {"gpu 0": 50.0}
    # every job of the lane on one device: the number is that device's; a schema 3 manifest is read as written
    data["jobs"][1]["gpu"]["uuid"] = "GPU-a"
    assert manifest.h2d_by_device(data) == {"vm/GPU-a": 50.0}
    assert manifest.h2d_by_device(dict(data, schema=3)) == {"gpu 0": 50.0}


@pytest.mark.e2e
def test_an_interrupted_sweep_prints_kit_sweep_resume_and_that_finishes_it(tmp_path):
    import shlex
    import subprocess

    from test_e2e_local import CLI_ENV, interrupt_when
    model = _model_folder(tmp_path / "models", "qwen3-0.6b", twins.twin_config("qwen3-0.6b"))
    cmd = [sys.executable, "-m", "kit", "sweep", "--models", str(model), "--runtime", "local", "--cache", "shared",
           "--results-dir", str(tmp_path / "results"), "--server-cmd", server_cmd({"marker": "sweep-int"})]
    code, err = interrupt_when(cmd, r"l1 r1: done\s+load A round 0 .* ok")
    assert code == 130, err
    printed = re.search(r"`([^`]* --resume [^`]+)`", err).group(1)
    assert " sweep --resume " in printed and " run --resume " not in err
    r = subprocess.run(shlex.split(printed), capture_output=True, text=True, env=CLI_ENV, cwd=ROOT, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((only_run(tmp_path / "results") / "manifest.json").read_text())
    assert m["complete"] is True and m["resumes"][0]["command"][1:3] == ["sweep", "--resume"]
    assert not leftover_servers("sweep-int")


def test_a_dry_run_resume_refuses_what_the_resume_would_refuse(tmp_path, capsys):
    """The reference's 8B unit unfinished, its twin's folder (/root/sk/twins on the GPU host) not here: the
    resume needs it, so its dry run says so too, in one line, and writes nothing."""
    from kit.cli import main
    run, before = _reference_copy(tmp_path, unfinished="guide-qwen3-8b-l2")
    for extra in ([], ["--dry-run"]):
        code = main(["sweep", "--resume", "one", "--results-dir", str(run.parent), *extra])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "/root/sk/twins/qwen3-8b" in err, err
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_the_suspect_mark_is_above_its_bars_whisker_and_inside_the_axes(tmp_path):
    """SUSPECT written over the whisker is struck through by it; written above the axes it runs into the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from kit.plot import charts, specs
    bars = [dict(model=m, level=level, first_switch=None, sleep=0.5 * k, wake=1.0 * k, switch_min=1.0 * k,
                 switch_max=4.0 * k, bound_s=None, ram_gib=1.0, note=None, suspect=True)
            for k, m in enumerate(("a", "b"), 1) for level in (1, 2)]
    spec = specs.GuideSpec(title="t", provenance=["p"], levels=[1, 2], models=[{"slug": "a", "size": "1 B"},
                           {"slug": "b", "size": "2 B"}], bars=bars, summary=[])
    fig = charts.guide_figure(spec)
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    marks = [t for t in ax.texts if t.get_text() == "SUSPECT"]
    assert len(marks) == 4
    for t, b in zip(marks, bars):                  # drawn in the bars' order
        box, x = t.get_window_extent(renderer), t.get_position()[0]
        assert box.y0 >= ax.transData.transform((x, b["switch_max"]))[1] - 0.5     # above the whisker's top
        assert box.y1 <= ax.get_window_extent(renderer).y1                          # below the axes' top


@pytest.mark.parametrize("names", [[f"q{k}b" for k in range(12)], [f"a-long-model-name-{k}" for k in range(6)],
                                   ["qwen3-0.6b"]])
def test_the_guides_model_names_neither_run_into_each_other_nor_into_the_provenance(names):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from kit.plot import charts, specs
    bars = [dict(model=m, level=1, first_switch=None, sleep=0.5, wake=1.0, switch_min=1.5, switch_max=1.5,
                 bound_s=None, ram_gib=1.0, note=None, suspect=False) for m in names]
    spec = specs.GuideSpec(title="t", provenance=["a provenance line"] * 12, levels=[1],
                           models=[{"slug": m, "size": "14.77 B"} for m in names], bars=bars, summary=[])
    fig = charts.guide_figure(spec)
    renderer = FigureCanvasAgg(fig).get_renderer()
    footer_top = max(t.get_window_extent(renderer).y1 for t in fig.texts if "provenance" in t.get_text())
    for ax in fig.axes:
        ticks = ax.get_xticklabels()
        boxes = [t.get_window_extent(renderer) for t in ticks]
        assert len(boxes) == len(names) and min(b.y0 for b in boxes) > footer_top
        angle = ticks[0].get_rotation()
        if angle == 0:
            assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]
        else:       # slanted lines of text, parallel: apart when the gap across them holds a line's height
            step = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
            lines = ticks[0].get_text().count("\n") + 1
            assert step * math.sin(math.radians(angle)) >= renderer.points_to_pixels(ticks[0].get_fontsize()) * lines
