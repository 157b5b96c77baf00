"""The real CLI, end to end, on the host runtime with the vLLM test double as the server."""
import json
import re
import signal
import subprocess
import os

import pytest

from conftest import DELAYS, MODEL_A, MODEL_B, ROOT, double_config, kit, kit_cmd, leftover_servers, only_run, run_args
from kit import events, scenarios

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


def test_all_tables_end_to_end(results):
    r = kit("run", "--all", *run_args(results, double_config(marker="e2e-all"), "--fixed-output"))
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(results)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["options"]["arms"] == ["l1", "nosleep", "l1-fp8", "l1-nowarm", "l2"]
    for n in range(1, 6):
        assert (run / "tables" / f"table{n}.md").exists()
        assert (run / "tables" / f"table{n}.json").exists()
    for arm in ("l1", "l1-fp8", "l2"):
        got = [(e["kind"], e["model"], e["round"]) for e in arm_events(run, arm)]
        assert got == sleep_arm_sequence(warmup=True), arm
    assert [(e["kind"], e["model"], e["round"]) for e in arm_events(run, "l1-nowarm")] == sleep_arm_sequence(False)
    assert [(e["kind"], e["model"], e["round"]) for e in arm_events(run, "nosleep")] == NOSLEEP_SEQUENCE
    for arm in manifest["options"]["arms"]:
        for e in arm_events(run, arm):
            assert e["ok"], e
            if e["kind"] == "prompt":
                assert e["output_tokens"] == scenarios.MAX_TOKENS
                assert e["ttft_s"] >= DELAYS[e["model"]]["first_token"]
            for check in e.get("checks") or []:
                assert check["ok"], (arm, e["seq"], check)
    assert "[l2 5/5]" in r.stdout and "sleep" in r.stdout
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


def test_interrupt_stops_everything_and_resume_finishes(results):
    cfg = double_config(marker="e2e-interrupt")
    cmd = kit_cmd("run", "1", *run_args(results, cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    for line in proc.stdout:            # interrupt right after model B's server is up
        if re.search(r"load\s+B round 0 .* ok", line):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "kit run --resume" in err
    assert not leftover_servers("e2e-interrupt")
    run = only_run(results)
    assert json.loads((run / "manifest.json").read_text())["complete"] is False
    r = kit("run", "--resume", run.name, "--runtime", "local", "--results-dir", results)
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert len(manifest["resumes"]) == 1 and "--resume" in manifest["resumes"][0]["command"]
    assert [(e["kind"], e["model"], e["round"]) for e in arm_events(run, "l1")] == sleep_arm_sequence(True)
    assert (run / "tables" / "table1.md").exists()


def test_resume_skips_complete_arms(results):
    r = kit("run", "1", *run_args(results, double_config(marker="e2e-resume")))
    assert r.returncode == 0
    run = only_run(results)
    before = (run / "l1" / "r1" / "events.jsonl").read_bytes()
    r = kit("run", "--resume", run.name, "--runtime", "local", "--results-dir", results)
    assert r.returncode == 0
    assert r.stdout.count("already complete, skipped") == 2
    assert (run / "l1" / "r1" / "events.jsonl").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["run", "7"], "unknown table '7'"),
    (["run", "1", "--repeat", "0"], "--repeat must be at least 1"),
    (["run"], "which tables?"),
    (["run", "1", "--all"], "not both"),
    (["table", "--results-dir", "/nonexistent/results"], "not a readable folder"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = kit(*args)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_malformed_events_name_the_line(results):
    r = kit("run", "1", *run_args(results, double_config(marker="e2e-bad")))
    run = only_run(results)
    path = run / "l1" / "r1" / "events.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace('"kind"', '"kindd"')
    path.write_text("\n".join(lines) + "\n")
    r = kit("table", run.name, "--results-dir", results)
    assert r.returncode == 2
    assert f"events.jsonl:5" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_dry_run_prints_the_plan_and_starts_nothing(results):
    r = kit("run", "2", "5", *run_args(results, double_config(marker="e2e-dry"), "--dry-run"))
    assert r.returncode == 0
    assert "arms in order: l1, l1-fp8, l2, nosleep" in r.stdout
    assert "--quantization fp8" in r.stdout and "--enable-sleep-mode" in r.stdout
    assert not results.exists()


def test_runs_are_never_overwritten(results):
    for _ in range(2):
        assert kit("run", "1", *run_args(results, double_config(marker="e2e-twice"))).returncode == 0
    assert len([p for p in results.iterdir() if p.is_dir()]) == 2


def test_manifest_records_what_repeats_the_run(results):
    r = kit("run", "4", *run_args(results, double_config(marker="e2e-manifest"), "--fixed-output"))
    assert r.returncode == 0, r.stderr
    m = json.loads((only_run(results) / "manifest.json").read_text())
    assert m["command"][:3] == ["kit", "run", "4"] and "--fixed-output" in m["command"]
    assert m["kit_version"] and m["git_commit"]
    assert m["runtime"]["name"] == "local" and any(p.startswith("click==") for p in m["runtime"]["packages"])
    assert m["models"]["A"] == {"name": MODEL_A, "path": None, "sha256": None}
    assert m["server_args"]["l2"] == scenarios.ARMS["l2"].server_args()
    assert "--enable-sleep-mode" in m["server_args"]["l1"]
    assert m["options"] | {"server_cmd": None} == {
        "tables": [4], "arms": ["l1", "l2"], "repeat": 1, "protocol": "corrected", "fixed_output": True,
        "cache": "cold", "server_cmd": None, "ready_timeout": 900.0, "call_timeout": 300.0}
    assert set(m["environment"]) >= {"vllm_version", "torch_version", "cuda_version", "driver", "gpus", "h2d_gbps"}
    assert [e["repeat"] for e in m["arms"]["l1"]] == [1] and m["arms"]["l1"][0]["ok"] is True
    assert m["complete"] is True and m["created"] <= m["ended"]


def test_no_secret_reaches_the_run_directory(results):
    token = "hf_" + "Zq3" * 12
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_TOKEN=token, MY_API_KEY="sk-secret-value-123")
    r = subprocess.run(kit_cmd("run", "1", *run_args(results, double_config(marker="e2e-secret"))),
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)
    assert r.returncode == 0, r.stderr
    for path in only_run(results).rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert token not in text and "sk-secret-value-123" not in text, path
