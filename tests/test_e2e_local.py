"""The real CLI, end to end, on the host runtime with the vLLM test double as the server.

One shared run of all five tables serves the tests that only need a finished run; the others run
what they test (faults, timing, the seed protocol, interrupt and resume).
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys

import pytest

from conftest import (DELAYS, MODEL_A, MODEL_B, ROOT, double_config, kit, kit_cmd, leftover_servers, only_run,
                      run_args, server_cmd)
from kit import manifest
from kit.workload import events, scenarios

pytestmark = pytest.mark.e2e
TOKEN = "hf_" + "Zq3" * 12

SLACK = 1.0   # upper tolerance (s) on a loaded 2-core machine; the real error is measured by `make bench`


def sleep_arm_sequence(warmup):
    seq = [("load", "A", 0)] + ([("warmup", "A", 0)] if warmup else []) + [("sleep", "A", 0), ("load", "B", 0)]
    seq += ([("warmup", "B", 0)] if warmup else []) + [("sleep", "B", 0)]
    for r in (1, 2, 3):
        for m in "AB":
            seq += [("wake", m, r), ("prompt", m, r)] + ([] if (r == 3 and m == "B") else [("sleep", m, r)])
    return seq + [("stop", "A", 3), ("stop", "B", 3), ("total", None, 0)]


NOSLEEP_SEQUENCE = [(k, m, r) for r in (1, 2, 3) for m in "AB" for k in ("load", "prompt", "stop")] + [("total", None, 0)]


def arm_events(run_dir, arm, repeat=1):
    return events.read(run_dir / arm / f"r{repeat}" / "events.jsonl")


def requests_of(run_dir, arm, model):
    log = (run_dir / arm / "r1" / f"server-{model}.log").read_text()
    return re.findall(r"^DOUBLE-REQUEST (\S+ \S+)", log, re.M)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """`kit run --all --fixed-output` once, with secrets planted in its environment."""
    results = tmp_path_factory.mktemp("shared") / "results"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", HF_TOKEN=TOKEN, MY_API_KEY="sk-secret-value-123")
    r = subprocess.run(kit_cmd("run", "--all", *run_args(results, double_config(marker="e2e-all"), "--fixed-output")),
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    return r, only_run(results)


def test_all_tables_end_to_end(shared_run):
    r, run = shared_run
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["units"] == ["l1", "nosleep", "l1-fp8", "l1-nowarm", "l2"]
    for n in range(1, 6):
        assert (run / "tables" / f"table{n}.md").exists() and (run / "tables" / f"table{n}.json").exists()
        assert f"Table {n}: {scenarios.TABLES[n].title}" in r.stdout
    for arm in ("l1", "l1-fp8", "l2"):
        got = [(e["kind"], e["model"], e["round"]) for e in arm_events(run, arm)]
        assert got == sleep_arm_sequence(warmup=True), arm
    assert [(e["kind"], e["model"], e["round"]) for e in arm_events(run, "l1-nowarm")] == sleep_arm_sequence(False)
    assert [(e["kind"], e["model"], e["round"]) for e in arm_events(run, "nosleep")] == NOSLEEP_SEQUENCE
    for arm in manifest["units"]:
        for e in arm_events(run, arm):
            assert e["ok"], e
            if e["kind"] == "prompt":
                assert e["output_tokens"] == scenarios.MAX_TOKENS
                assert e["ttft_s"] >= DELAYS[e["model"]]["first_token"]
            for check in e.get("checks") or []:
                assert check["ok"] is not False, (arm, e["seq"], check)
    assert "[all GPUs] l2 r1: done  sleep A round 0" in r.stdout and "l2 r1: ok in" in r.stdout
    assert re.search(r"figures: `.* plot ", r.stdout)
    assert "In short:\nTable 1: a level-1 wake switched" in r.stdout      # the headline, in words
    assert not leftover_servers("e2e-all")


def test_requests_follow_the_corrected_protocol(results):
    r = kit("run", "4", *run_args(results, double_config(marker="e2e-proto")))
    assert r.returncode == 0, r.stderr
    run = only_run(results)
    l1 = requests_of(run, "l1", "A")
    assert "POST /sleep?level=1" in l1 and not any(q.startswith("POST /sleep?level=2") for q in l1)
    l2 = requests_of(run, "l2", "A")
    wake = l2.index("POST /wake_up")
    assert l2[wake:wake + 4] == ["POST /wake_up", "POST /collective_rpc", "POST /reset_prefix_cache",
                                 "POST /v1/chat/completions"]
    assert l2.count("POST /sleep?level=2") == 4    # A sleeps in rounds 0, 1, 2, 3
    wakes = [e for e in arm_events(run, "l2") if e["kind"] == "wake"]
    assert all(set(e["parts"]) == {"wake_up", "reload_weights", "reset_prefix_cache", "warmup"} for e in wakes)
    # without --fixed-output, ignore_eos is never sent and the double stops early
    prompts = [e for e in arm_events(run, "l1") if e["kind"] == "prompt"]
    assert all(0 < e["output_tokens"] < scenarios.MAX_TOKENS for e in prompts)
    assert "ignore_eos" not in (run / "l1" / "r1" / "server-A.log").read_text()


def test_measured_durations_match_the_doubles_delays(results):
    r = kit("run", "4", *run_args(results, double_config(marker="e2e-timing")))
    assert r.returncode == 0, r.stderr
    run = only_run(results)
    for arm, level in (("l1", 1), ("l2", 2)):
        for e in arm_events(run, arm):
            d = DELAYS.get(e["model"] or "A")
            if e["kind"] == "sleep":
                want = d[f"sleep_{level}"]
            elif e["kind"] == "wake":
                want = d["wake"] + (d["reload"] + d["reset"] if level == 2 else 0)
                assert e["parts"]["wake_up"] >= d["wake"]
            elif e["kind"] == "load":
                want = d["startup"]
            else:
                continue
            assert want <= e["duration_s"] <= want + SLACK, (arm, e)


def test_seed_protocol_replays_the_scripts_requests(results):
    r = kit("run", "4", *run_args(results, double_config(marker="e2e-seed"), "--protocol", "seed"))
    run = only_run(results)
    l2 = requests_of(run, "l2", "A")
    assert "POST /sleep" in l2 and not any("level=" in q for q in l2)   # level in a JSON body
    assert "DOUBLE-REQUEST POST /sleep {\"level\":2}" in (run / "l2" / "r1" / "server-A.log").read_text()
    # the JSON body is ignored by vLLM: the engine slept at level 1, and the kit's checks say so
    sleeps = [e for e in arm_events(run, "l2") if e["kind"] == "sleep"]
    failed = {c["check"] for e in sleeps for c in e["checks"] if not c["ok"]}
    assert "engine_log" in failed
    # 5 s readiness polling inflates every load
    assert all(e["duration_s"] >= 5.0 for e in arm_events(run, "l2") if e["kind"] == "load")
    table4 = (run / "tables" / "table4.md").read_text()
    assert "SUSPECT" in table4
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("fault, options, message", [
    ({"on": "wake", "action": "exit", "model": MODEL_B}, [], "exited with status"),
    ({"on": "sleep", "action": "hang"}, ["--call-timeout", "2"], "did not answer POST /sleep?level=1"),
    ({"on": "startup", "action": "never_ready", "model": MODEL_B}, ["--ready-timeout", "3"], "not ready after 3 s"),
    ({"on": "startup", "action": "exit", "model": MODEL_A}, [], "exited with status 1 before it was ready"),
])
def test_faults_fail_the_arm_loudly_and_leave_nothing(results, fault, options, message):
    marker = f"e2e-fault-{fault['on']}-{fault['action']}"
    r = kit("run", "3", *run_args(results, double_config([fault], marker=marker), *options))
    assert r.returncode == 1
    assert message in r.stdout
    run = only_run(results)
    status = json.loads((run / "l1" / "r1" / "status.json").read_text())
    assert status["ok"] is False and message in status["error"]
    assert not leftover_servers(marker)
    # the failed arm is shown as failed, never as numbers
    assert "FAILED" in (run / "tables" / "table3.md").read_text()


def test_a_500_on_reload_fails_only_the_level2_arm(results):
    fault = {"on": "reload", "action": "error500"}
    r = kit("run", "4", *run_args(results, double_config([fault], marker="e2e-500")))
    assert r.returncode == 1
    run = only_run(results)
    assert json.loads((run / "l1" / "r1" / "status.json").read_text())["ok"] is True
    l2 = json.loads((run / "l2" / "r1" / "status.json").read_text())
    assert not l2["ok"] and "HTTP 500" in l2["error"]
    assert not leftover_servers("e2e-500")


CLI_ENV = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def interrupt_when(cmd, pattern, signals=1):
    """Run the CLI, send SIGINT (`signals` times at once) when a stdout line matches; (exit status, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV, cwd=ROOT)
    for line in proc.stdout:
        if re.search(pattern, line):
            for _ in range(signals):
                proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def resume_as_printed(err):
    """Run the `kit run --resume ...` command that an interrupted run printed."""
    printed = re.search(r"`([^`]* run --resume [^`]+)`", err).group(1)     # as the kit was started: python -m kit
    return subprocess.run(shlex.split(printed), capture_output=True, text=True, env=CLI_ENV, cwd=ROOT, timeout=240)


def test_interrupt_stops_everything_and_the_printed_resume_command_finishes(results):
    cfg = double_config(marker="e2e-interrupt")
    cmd = kit_cmd("run", "1", *run_args(results, cfg), "--cache", "shared", "--ready-timeout", "120")
    code, err = interrupt_when(cmd, r"l1 r1: done\s+load B round 0 .* ok")   # right after model B is up in l1
    assert code == 130, err
    assert not leftover_servers("e2e-interrupt")
    run = only_run(results)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["interrupted"]
    r = resume_as_printed(err)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 of 2 jobs to run (l1 r1)" in r.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True and "interrupted" not in manifest
    assert len(manifest["resumes"]) == 1 and "--resume" in manifest["resumes"][0]["command"]
    assert manifest["options"]["cache"] == "shared" and manifest["options"]["ready_timeout"] == 120.0
    assert manifest["resumes"][0]["runtime"]["name"] == "local"
    assert [(e["kind"], e["model"], e["round"]) for e in arm_events(run, "l1")] == sleep_arm_sequence(True)
    assert (run / "tables" / "table1.md").exists()


def test_resume_of_a_complete_run_runs_nothing_and_refuses_other_options(results):
    r = kit("run", "1", *run_args(results, double_config(marker="e2e-resume")))
    assert r.returncode == 0
    run = only_run(results)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = kit("run", "--resume", run.name, "--results-dir", results)
    assert r.returncode == 0 and r.stdout == f"run {run.name} is complete: nothing to resume, nothing changed " \
        f"(its tables: `kit table {run.name}`)\n"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before     # the manifest too
    r = kit("run", "--resume", run.name, "--results-dir", results, "--runtime", "docker")
    assert r.returncode == 2 and "--runtime 'docker' conflicts with the run's 'local'" in r.stderr
    r = kit("run", "--resume", run.name, "--results-dir", results, "--dry-run")
    assert r.returncode == 0 and "0 job(s)" in r.stdout


def test_dry_run_prints_the_plan_and_starts_nothing(results):
    r = kit("run", "2", "5", *run_args(results, double_config(marker="e2e-dry"), "--dry-run"))
    assert r.returncode == 0, r.stderr
    assert "-> 4 job(s), longest first: nosleep r1," in r.stdout
    assert "--quantization fp8" in r.stdout and "--enable-sleep-mode" in r.stdout
    assert not results.exists()


def test_manifest_records_what_repeats_the_run(shared_run):
    _, run = shared_run
    m = json.loads((run / "manifest.json").read_text())
    assert m["schema"] == manifest.SCHEMA and m["command"][:3] == ["kit", "run", "--all"] and "--fixed-output" in m["command"]
    assert m["kit_version"] and m["git_commit"]
    assert m["runtime"]["name"] == "local" and any(p.startswith("click==") for p in m["runtime"]["packages"])
    assert m["models"]["A"] == {"name": MODEL_A, "path": None, "sha256": None}
    assert m["server_args"]["l2"] == scenarios.ARMS["l2"].server_args()
    assert m["options"] | {"server_cmd": None} == {
        "tables": [1, 2, 3, 4, 5], "arms": [], "repeat": 1, "runtime": "local", "model_a": MODEL_A,
        "model_b": MODEL_B, "protocol": "corrected", "fixed_output": True, "server_cmd": None,
        "ready_timeout": 900.0, "call_timeout": 300.0, "cache": "warm", "gpus": "all", "gpu_access": "auto",
        "image": "", "vllm_image": "", "hf_cache": "~/.cache/huggingface", "slurm_partition": "",
        "slurm_account": "", "slurm_time": "", "slurm_args": "", "slurm_python": "python3", "slurm_container": "none",
        "sweep_models": [], "sweep_levels": [], "gpu_memory_gib": 0.0}
    assert set(m["environment"]) >= {"vllm_version", "torch_version", "cuda_version", "driver", "gpus", "h2d_gbps"}
    assert sorted((j["unit"], j["repeat"], j["ok"], j["lane"]) for j in m["jobs"]) == [
        (u, 1, True, "all GPUs") for u in sorted(m["units"])]
    assert all(j["started"] <= j["ended"] for j in m["jobs"])
    assert m["complete"] is True and m["created"] <= m["ended"]


def test_no_secret_reaches_the_run_directory(shared_run):
    _, run = shared_run
    for path in run.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert TOKEN not in text and "sk-secret-value-123" not in text, path


def test_reading_commands_on_a_finished_run(shared_run):
    _, run = shared_run
    results = run.parent
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    r = kit("table", "--results-dir", results, "--table", "2,1")
    assert r.returncode == 0 and r.stdout.index("Table 1:") < r.stdout.index("Table 2:") and "Table 3" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 120
    doc = json.loads(kit("table", run.name, "--results-dir", results, "--format", "json").stdout)
    assert [t["table"] for t in doc["tables"]] == [1, 2, 3, 4, 5]
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before          # viewing wrote nothing
    ls = kit("ls", "--results-dir", results)
    assert ls.returncode == 0 and run.name in ls.stdout and "complete" in ls.stdout and "local" in ls.stdout
    show = kit("show", run.name, "--results-dir", results)
    assert "job l2 r1 on all GPUs: ok" in show.stdout and str(run) in show.stdout
    cmp = kit("compare", run.name, "published:a4000", "--results-dir", results)
    assert cmp.returncode == 0 and "A4000" in cmp.stdout and "fixed_output" in cmp.stdout


def test_seed_replay_of_table5_sleeps_a_twice_and_b_never(tmp_path):
    """online_sleep2_nosleep.py's quirk, executed by the workload itself (the l2 unit that serves Table 5)."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), VLLM_SERVER_DEV_MODE="1")
    r = subprocess.run([sys.executable, "-m", "kit.workload", "--arm", "l2", "--protocol", "seed", "--script",
                        "online_sleep2_nosleep.py", "--out", str(out), "--model-a", MODEL_A, "--model-b", MODEL_B,
                        "--server-cmd", server_cmd(double_config(marker="e2e-seed5"))],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    evs = events.read(out / "events.jsonl")
    assert {e["arm"] for e in evs} == {"l2@online_sleep2_nosleep"}
    setup = [(e["kind"], e["model"]) for e in evs if e["round"] == 0 and e["kind"] != "total"]
    assert setup == [("load", "A"), ("warmup", "A"), ("sleep", "A"), ("load", "B"), ("warmup", "B"), ("sleep", "A")]
    log_b = re.findall(r"^DOUBLE-REQUEST (\S+ \S+)", (out / "server-B.log").read_text(), re.M)
    assert log_b.index("POST /wake_up") < log_b.index("POST /sleep")       # B's first sleep comes after a wake


def test_two_gpus_run_two_arms_at_once_one_gpu_each(results):
    r = kit("run", "1", *run_args(results, double_config(marker="e2e-2gpu")), "--gpus", "0,1")
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(results)
    jobs = json.loads((run / "manifest.json").read_text())["jobs"]
    assert sorted(j["lane"] for j in jobs) == ["gpu 0", "gpu 1"]
    for j in jobs:
        for model in "AB":
            seen = re.findall(r"DOUBLE-NOTE CUDA_VISIBLE_DEVICES=(\S+)",
                              (run / j["unit"] / "r1" / f"server-{model}.log").read_text())
            assert seen and set(seen) == {j["gpu"]["id"]}, (j, seen)
    (a, b) = sorted(jobs, key=lambda j: j["started"])
    assert b["started"] < a["ended"]                        # they ran side by side
    assert "[gpu 0]" in r.stdout and "[gpu 1]" in r.stdout
    table = (run / "tables" / "table1.md").read_text()      # and the table says so, next to the loads
    assert "jobs at once: 2" in table and "up to 2 jobs ran at once, one per GPU" in table


def test_ctrl_c_stops_both_lanes_and_resume_runs_them_on_both_gpus_again(results):
    cmd = kit_cmd("run", "1", *run_args(results, double_config(marker="e2e-2lanes")), "--gpus", "0,1")
    code, err = interrupt_when(cmd, r"l1 r1: done\s+load B round 0 .* ok")   # nosleep runs on the other GPU
    assert code == 130, err
    assert not leftover_servers("e2e-2lanes")
    run = only_run(results)
    jobs = json.loads((run / "manifest.json").read_text())["jobs"]
    assert sorted(j["lane"] for j in jobs) == ["gpu 0", "gpu 1"] and not any(j["ok"] for j in jobs)
    r = resume_as_printed(err)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 jobs to run (nosleep r1, l1 r1)" in r.stdout
    assert "[gpu 0]" in r.stdout and "[gpu 1]" in r.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["options"]["gpus"] == "0,1"
    assert all(j["ok"] for j in manifest["jobs"]) and not leftover_servers("e2e-2lanes")


def test_a_second_ctrl_c_still_stamps_the_run_and_prints_the_resume_command(results):
    cmd = kit_cmd("run", "1", *run_args(results, double_config(marker="e2e-twice")))
    code, err = interrupt_when(cmd, r"done\s+load A round 1 .* ok", signals=2)
    assert code == 130, err
    assert " run --resume " in err and "Traceback" not in err
    manifest = json.loads((only_run(results) / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["interrupted"]
    assert not leftover_servers("e2e-twice")


def test_the_double_as_vllm_0_11_passes_every_check(results):
    config = dict(double_config(marker="e2e-v011"), vllm_version="0.11.0")
    r = kit("run", "4", *run_args(results, config), "--fixed-output")
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(results)
    assert "vLLM API server version 0.11.0" in (run / "l2" / "r1" / "server-A.log").read_text()
    for arm in ("l1", "l2"):
        checks = [c for e in arm_events(run, arm) for c in e.get("checks") or []]
        assert checks and all(c["ok"] is not False for c in checks), arm
        assert [c["ok"] for c in checks if c["check"] == "engine_log"] == [True] * 7
