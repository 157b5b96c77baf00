"""Hostile tests of the guide's crossover and summary lines (kit/results/guide.py) and of `kit sweep --resume
--add-models`: each was a way to make the guide claim more than its cells measured."""
import json
import os
import re
import shlex
import signal
import subprocess

import pytest

from conftest import ROOT, kit, kit_cmd, leftover_servers, server_cmd
from kit import sweep, twins
from kit.options import RunOptions
from kit.results import guide, metrics
from kit.results.load import Repeat, Run
from kit.workload import scenarios
from test_run_faults import read_until

CLI_ENV = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def _rows(pairs, states=None):
    """Guide rows from [(slug, params or None, level-1 switch s, level-2 switch s)]; states: {(slug, level): state}."""
    cell = lambda s: metrics.Cell(s, s, s, 1)
    size = lambda params: f"{params / 1e9:.2f} B" if params else "size n/a"
    return [guide.GuideRow(slug, slug, params, size(params), level, f"guide-{slug}-l{level}",
                           (states or {}).get((slug, level), "ok"), switch=cell(s), first_switch=cell(s))
            for slug, params, *switches in pairs for level, s in zip((1, 2), switches)]


def test_a_model_of_unknown_size_is_not_placed_in_the_crossover():
    """Its config.json lacks the sizes: the guide lists it last, which is no size; the crossover cannot be there."""
    c = guide.crossover(_rows([("qwen3-0.6b", 0.6e9, 1.0, 2.0), ("mystery", None, 3.0, 1.0)]))
    assert c.size is None and "size n/a" not in c.text.split(" (")[0]
    assert c.text.startswith("later switches: no crossover up to 0.60 B: level 1's switch is faster")
    assert "mystery" in c.text and "size unknown" in c.text            # measured, said, but not placed
    only = guide.crossover(_rows([("mystery", None, 3.0, 1.0)]))
    assert only.size is None and "size unknown" in only.text and "crossover at" not in only.text


def test_models_of_one_size_that_disagree_make_no_crossover_at_that_size():
    """A twin and a copy of one shape: level 1 wins one, level 2 the other. 'Crossover at 0.60 B ... level 1's
    is faster up to 0.60 B' contradicts itself."""
    c = guide.crossover(_rows([("qwen3-0.6b", 596049920, 1.0, 2.0), ("qwen3-0.6b-copy", 596049920, 3.0, 1.0)]))
    assert c.size is None and "crossover at" not in c.text
    assert "disagree" in c.text and "qwen3-0.6b-copy" in c.text
    c = guide.crossover(_rows([("a", 0.6e9, 1.0, 2.0), ("b", 0.6e9, 3.0, 2.0), ("c", 8e9, 3.0, 2.0)]))
    assert c.size == "8.00 B" and c.text.endswith("below it level 1's is faster at 0.60 B (a); level 2 was also faster "
                                                  "at 0.60 B (b)")


def test_a_crossover_does_not_claim_level_1_wins_every_smaller_size_when_it_does_not():
    c = guide.crossover(_rows([("s0", 0.6e9, 1.0, 2.0), ("s1", 1.7e9, 3.0, 2.0), ("s4", 4e9, 1.0, 2.0),
                               ("s8", 8e9, 5.0, 3.0)]))
    assert c.size == "8.00 B"
    assert "level 1's is faster up to 4.00 B" not in c.text
    assert "level 2 was also faster at 1.70 B" in c.text


def test_a_crossover_drawn_from_a_suspect_unit_says_so():
    """The study's tables say SUSPECT beside a ratio built on an arm whose sleep check failed; so must the guide's
    verdict, which the figure repeats."""
    rows = _rows([("qwen3-0.6b", 0.6e9, 1.0, 2.0), ("qwen3-8b", 8e9, 5.0, 3.0)], {("qwen3-8b", 1): "suspect"})
    c = guide.crossover(rows)
    assert c.size == "8.00 B" and c.text.endswith("SUSPECT: a sleep check failed (qwen3-8b L1)")
    assert "SUSPECT" not in guide.crossover(_rows([("qwen3-0.6b", 0.6e9, 1.0, 2.0)])).text


def test_a_verdict_over_one_size_does_not_read_as_a_range():
    c = guide.crossover(_rows([("qwen3-0.6b", 0.6e9, 2.0, 1.0)]))
    assert c.text == ("later switches: no crossover: level 2's switch is faster than level 1's at every size measured "
                      "(one size, 0.60 B)")


# -- summary lines of made-up runs --------------------------------------------------------------------------
def _events(level, sleep_s, wake_s, rss=True):
    evs = []
    for r in (1, 2, 3):
        evs.append({"kind": "sleep", "model": "A", "round": r, "duration_s": sleep_s, "ok": True, "level": level,
                    "rss_mib_before": 2000 if rss else None, "rss_mib_after": 2000 + (1024 if r == 1 and level == 1 else 0)})
        evs.append({"kind": "wake", "model": "A", "round": r, "duration_s": wake_s, "ok": True, "level": level})
        evs.append({"kind": "prompt", "model": "A", "round": r, "duration_s": 0.5, "ok": True})
    return evs


def _run(tmp_path, models, levels, units):
    entries = [{"name": f"/m/{slug}", "slug": slug, "estimate": sweep.estimate(twins.twin_config(twin)), "fits": True,
                "skipped": None, "units": {str(lv): f"guide-{slug}-l{lv}" for lv in levels}} for slug, twin in models]
    manifest = {"run_id": "r", "complete": True, "h2d": {},
                "sweep": {"levels": list(levels), "gpu_memory_gib": 79.2, "gpu_memory_source": "NVML, GPU 0",
                          "server_args": scenarios.SWEEP_SERVER_ARGS, "models": entries}}
    opts = RunOptions(sweep_models=tuple(e["name"] for e in entries), sweep_levels=tuple(levels))
    return Run(tmp_path, manifest, opts, units)


def _rep(events, ok=True):
    return [Repeat(1, events, {"ok": ok}, {}, None if ok else "sleep A round 1: HTTP 500")]


def test_level_1_ram_says_why_it_has_no_number(tmp_path):
    """'n/a (no RSS reading)' is a reason; it must be the true one."""
    only_l2 = _run(tmp_path, [("qwen3-0.6b", "qwen3-0.6b")], (2,), {"guide-qwen3-0.6b-l2": _rep(_events(2, 0.1, 0.5))})
    lines = guide.summary_lines(guide.build_guide(only_l2))
    assert "level 1 holds in host RAM while asleep: not measured (the run has no level 1)" in lines
    failed = _run(tmp_path, [("qwen3-0.6b", "qwen3-0.6b")], (1, 2),
                  {"guide-qwen3-0.6b-l1": _rep(_events(1, 0.1, 0.3), ok=False),
                   "guide-qwen3-0.6b-l2": _rep(_events(2, 0.1, 0.5))})
    lines = guide.summary_lines(guide.build_guide(failed))
    assert "level 1 holds in host RAM while asleep: n/a (no level-1 unit has numbers)" in lines
    no_rss = _run(tmp_path, [("qwen3-0.6b", "qwen3-0.6b")], (1,), {"guide-qwen3-0.6b-l1": _rep(_events(1, 0.1, 0.3, rss=False))})
    assert "level 1 holds in host RAM while asleep: n/a (no RSS reading)" in guide.summary_lines(guide.build_guide(no_rss))


def test_summary_lines_name_the_model_where_two_have_one_size(tmp_path):
    """Two models of one shape (a twin and the hub model): '0.60 B 1.00 GiB; 0.60 B 1.00 GiB' says nothing of which."""
    run = _run(tmp_path, [("qwen3-0.6b", "qwen3-0.6b"), ("qwen3-0.6b-base", "qwen3-0.6b"), ("qwen3-1.7b", "qwen3-1.7b")],
               (1,), {f"guide-{s}-l1": _rep(_events(1, 0.1, 0.3)) for s in ("qwen3-0.6b", "qwen3-0.6b-base", "qwen3-1.7b")})
    ram = next(line for line in guide.summary_lines(guide.build_guide(run)) if line.startswith("level 1 holds"))
    assert ram == ("level 1 holds in host RAM while asleep: 0.60 B (qwen3-0.6b) 1.00 GiB; "
                   "0.60 B (qwen3-0.6b-base) 1.00 GiB; 1.72 B 1.00 GiB")


@pytest.mark.parametrize("key", ["switch", "first_switch"])
def test_the_crossover_of_either_switch_reads_only_its_own_cells(key):
    """8B's level 2 has the other switch only (e.g. a made-up or older record): no 8B pair, so no crossover there."""
    from dataclasses import replace
    rows = [replace(r, **{key: None}) if (r.slug, r.level) == ("b", 2) else r
            for r in _rows([("a", 0.6e9, 1.0, 2.0), ("b", 8e9, 5.0, 3.0)])]
    c = guide.crossover(rows, key)
    assert [p.model for p in c.pairs] == ["a"] and c.size is None


# -- an addition interrupted mid-unit, on the test double ----------------------------------------------------------
@pytest.mark.e2e
def test_an_addition_stopped_mid_unit_leaves_no_server_holds_the_run_and_resumes_to_a_verified_bundle(tmp_path):
    """SIGTERM while an added model's unit runs: no server left, the manifest says interrupted with the added
    model's entry, a second addition meanwhile is refused (the run lock) without a byte changed, and the printed
    resume finishes the run into a bundle that verifies."""
    marker, results = "hostile-add", tmp_path / "results"
    models = {}
    for name, twin in (("qwen3-0.6b", "qwen3-0.6b"), ("qwen3-slow", "qwen3-1.7b"), ("qwen3-other", "qwen3-0.6b")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(twins.twin_config(twin)))
        models[name] = str(tmp_path / name)
    fast = {"startup": 0.1, "sleep_1": 0.02, "sleep_2": 0.01, "wake": 0.02, "reload": 0.03}
    cfg = {"marker": marker, "models": {"qwen3-0.6b": {"delays": fast}, "qwen3-other": {"delays": fast},
                                        "qwen3-slow": {"delays": dict(fast, wake=0.5)}}}
    first = kit("sweep", "--models", models["qwen3-0.6b"], "--runtime", "local", "--results-dir", results, "--run-id", "g",
                "--server-cmd", server_cmd(cfg))
    assert first.returncode == 0, first.stdout + first.stderr
    run = results / "g"
    proc = subprocess.Popen(kit_cmd("sweep", "--resume", "g", "--add-models", models["qwen3-slow"], "--results-dir", results),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV)
    try:
        read_until(proc, "guide-qwen3-slow-l1 r1: done  load A")
        held = (run / "manifest.json").read_bytes()
        assert [m["slug"] for m in json.loads(held)["sweep"]["models"]] == ["qwen3-0.6b", "qwen3-slow"]
        busy = kit("sweep", "--resume", "g", "--add-models", models["qwen3-other"], "--results-dir", results)
        assert busy.returncode == 2 and busy.stderr.startswith("kit: error: run g is being run by another kit run")
        assert len(busy.stderr.strip().splitlines()) == 1 and (run / "manifest.json").read_bytes() == held
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert not leftover_servers(marker)
    stopped = json.loads((run / "manifest.json").read_text())
    assert stopped["complete"] is False and stopped["interrupted"]
    assert stopped["units"][-2:] == ["guide-qwen3-slow-l1", "guide-qwen3-slow-l2"]
    printed = re.search(r"`([^`]* --resume g [^`]+)`", err).group(1)
    done = subprocess.run(shlex.split(printed), capture_output=True, text=True, env=CLI_ENV, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    after = json.loads((run / "manifest.json").read_text())
    assert after["complete"] is True and after["sweep"] == stopped["sweep"]      # the fit is not redone
    assert {j["unit"]: j["ok"] for j in after["jobs"]} == {u: True for u in after["units"]}
    made = kit("bundle", "g", "--results-dir", results, "--no-figures")
    assert made.returncode == 0, made.stderr
    verified = kit("bundle", "verify", made.stdout.strip())
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": ok"), verified.stdout
