"""--cache warm|cold|shared: priming once per lane and server configuration, an empty cache per server start."""
import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DOUBLE, MODEL_A, MODEL_B, ROOT, double_config, kit, leftover_servers, only_run, run_args
from kit import layout, plan
from kit.manifest import Manifest
from kit.cli import main
from kit.options import RunOptions
from kit.run import Execution, Task
from kit.runtimes import Lane, Runtime
from kit.workload import events, scenarios
from kit.workload.compilecache import OWNER, ColdCaches


def test_cold_caches_are_fresh_and_swept_when_their_owner_is_gone(tmp_path):
    caches = ColdCaches(tmp_path)
    a, b = caches.new(), caches.new()
    assert a != b and sorted(p.name for p in a.iterdir()) == [OWNER]
    caches.remove(a)
    assert not a.exists() and b.exists()
    dead = tmp_path / "4242-dead"                   # a SIGKILLed workload's: its owner file is not locked
    (dead / "vllm").mkdir(parents=True)
    (dead / OWNER).touch()
    alive = tmp_path / "4343-alive"
    alive.mkdir()
    with open(alive / OWNER, "w") as held:           # another workload's, still running
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        c = caches.new()
        assert not dead.exists() and alive.exists() and b.exists() and c.exists()
    caches.remove_all()
    assert not b.exists() and not c.exists()


def wrapped_double(tmp_path):
    """A server command that logs the compile cache it was given, and 'compiles' into it, then is the double."""
    script = tmp_path / "server.sh"
    script.write_text('#!/bin/sh\n'
                      'echo "CACHE-ROOT=$VLLM_CACHE_ROOT CONTENTS=$(ls -A "$(dirname "$VLLM_CACHE_ROOT")" | tr "\\n" ,)"\n'
                      'mkdir -p "$VLLM_CACHE_ROOT" && touch "$VLLM_CACHE_ROOT/compiled"\n'
                      f'exec {sys.executable} {DOUBLE} --config "$DOUBLE_CONFIG" "$@"\n')
    script.chmod(0o755)
    return str(script)


def workload(tmp_path, *args, marker):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), VLLM_SERVER_DEV_MODE="1", TMPDIR=str(tmp_path),
               DOUBLE_CONFIG=json.dumps(double_config(marker=marker)))
    r = subprocess.run([sys.executable, "-m", "kit.workload", "--out", str(out), "--model-a", MODEL_A,
                        "--model-b", MODEL_B, "--server-cmd", wrapped_double(tmp_path), *args],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.mark.e2e
def test_cold_gives_every_server_start_an_empty_cache_and_removes_it(tmp_path):
    out = workload(tmp_path, "--arm", "nosleep", "--cold-cache", marker="cache-cold")
    seen = [re.findall(r"^CACHE-ROOT=(\S+) CONTENTS=(\S*)$", (out / f"server-{m}.log").read_text(), re.M)
            for m in "AB"]
    starts = seen[0] + seen[1]
    assert len(starts) == 6 and len({root for root, _ in starts}) == 6      # three starts of each model
    assert all(contents == f"{OWNER}," for _, contents in starts)           # nothing compiled before
    assert all(Path(root).is_relative_to(tmp_path) and not Path(root).parent.exists() for root, _ in starts)


@pytest.mark.e2e
def test_priming_starts_each_server_once_outside_the_measured_events(tmp_path):
    out = workload(tmp_path, "--arm", "l1", "--prime", marker="cache-prime")
    primed = [(e["kind"], e["model"], e["ok"]) for e in events.read(out / "priming.jsonl")]
    assert primed == [("load", "A", True), ("stop", "A", True), ("load", "B", True), ("stop", "B", True)]
    measured = [e for e in events.read(out / "events.jsonl")]
    assert [(e["kind"], e["model"]) for e in measured if e["kind"] == "load"] == [("load", "A"), ("load", "B")]
    # the measured loads started after priming compiled into the same cache (warm: one folder for all)
    roots = re.findall(r"^CACHE-ROOT=(\S*) CONTENTS", (out / "server-A.log").read_text(), re.M)
    assert len(roots) == 2 and len(set(roots)) == 1


class RecordingRuntime(Runtime):
    """Runs nothing: records each job's workload argv and writes what a primed workload writes."""
    name = "recording"

    def __init__(self, keeps_gpu):
        self.lanes_keep_gpu, self.argvs = keeps_gpu, []

    def run_arm(self, job, out_dir, on_line):
        self.argvs.append((job.unit, job.gpu, job.argv))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        if "--prime" in job.argv:
            w = events.Writer(Path(out_dir) / "priming.jsonl", run=job.run_id, arm=job.unit, repeat=job.repeat)
            for m in "AB":
                w.write(kind="load", model=m, round=0, start_s=0.0, duration_s=1.0, ok=True, error=None)
            w.close()
        return 0


@pytest.mark.parametrize("keeps_gpu, cache, primed", [
    (True, "warm", {"gpu 0": ["nosleep", "l1-fp8", "l2"], "gpu 1": ["nosleep", "l1"]}),
    (False, "warm", {"gpu 0": ["nosleep", "l1-fp8", "l2", "l1-nowarm"], "gpu 1": ["nosleep", "l1"]}),
    (True, "cold", {"gpu 0": [], "gpu 1": []}),
    (True, "shared", {"gpu 0": [], "gpu 1": []}),
])
def test_a_lane_primes_each_server_configuration_once(tmp_path, keeps_gpu, cache, primed):
    """l1, l1-nowarm and l2 start the same servers; nosleep and l1-fp8 other ones. Slurm-like runtimes
    (jobs placed by the scheduler, not the lane) prime in every job."""
    options = RunOptions(tables=(1, 2, 3, 4, 5), runtime="local", cache=cache)
    run_dir = layout.RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    record = Manifest(options, run_id="run")
    runtime = RecordingRuntime(keeps_gpu)
    work = Execution(run_dir, record, runtime)
    work.progress = type("P", (), {"line": lambda *a: None})()
    jobs = {j.unit.name: j for j in plan.jobs(options)}
    order = [("gpu 0", "nosleep"), ("gpu 1", "nosleep"), ("gpu 0", "l1-fp8"), ("gpu 0", "l2"),
             ("gpu 1", "l1"), ("gpu 0", "l1-nowarm")]
    for lane, unit in order:
        job = plan.Job(jobs[unit].unit, 2 if (lane, unit) == ("gpu 1", "nosleep") else 1)
        Task(work, job).run(Lane(lane))
    got = {lane: [j["unit"] for j in record.jobs if j["lane"] == lane and j["priming"]] for lane in primed}
    assert got == primed
    assert all(j["priming"] is None or j["priming"]["ok"] for j in record.jobs)
    assert all(("--cold-cache" in argv) == (cache == "cold") for _, _, argv in runtime.argvs)
    # a resume primes again: it may run on another host, whose cache is empty
    assert Execution(run_dir, record, runtime).primed == set()


@pytest.mark.e2e
def test_a_warm_run_primes_before_measuring_and_the_manifest_says_so(results):
    r = kit("run", "1", "4", *run_args(results, double_config(marker="e2e-warm")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "done  prime A round 0" in r.stdout
    manifest = json.loads((only_run(results) / "manifest.json").read_text())
    assert manifest["options"]["cache"] == "warm"
    primed = sorted(j["unit"] for j in manifest["jobs"] if j["priming"])
    keys = {u: scenarios.ARMS[u].compile_key() for u in ("nosleep", "l1", "l2")}
    assert len(primed) == 2 and {keys[u] for u in primed} == {keys["nosleep"], keys["l1"]}
    for j in manifest["jobs"]:
        if j["priming"]:
            assert [load["model"] for load in j["priming"]["loads"]] == ["A", "B"] and j["priming"]["ok"]
    assert not leftover_servers("e2e-warm")


@pytest.mark.e2e
def test_ctrl_c_while_priming_leaves_nothing_and_the_resume_primes_again(results):
    from test_e2e_local import interrupt_when, resume_as_printed
    cmd = [sys.executable, "-m", "kit", "run", "1", *map(str, run_args(results, double_config(marker="e2e-prime-int")))]
    code, err = interrupt_when(cmd, r"done\s+prime A round 0")
    assert code == 130, err
    assert not leftover_servers("e2e-prime-int")
    r = resume_as_printed(err)
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((only_run(results) / "manifest.json").read_text())
    assert manifest["complete"] and all(j["priming"] and j["priming"]["ok"] for j in manifest["jobs"])
    assert not leftover_servers("e2e-prime-int")


def test_the_dry_run_says_what_warm_primes(results, capsys):
    code = main(["run", "--all", *map(str, run_args(results, double_config())), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "each of the 3 server configuration(s) once" in out
    code = main(["run", "--all", *map(str, run_args(results, double_config())), "--dry-run", "--cache", "cold"])
    out = capsys.readouterr().out
    assert code == 0 and "priming" not in out and "configuration(s) once" not in out
