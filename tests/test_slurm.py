"""The Slurm runtime against a real one-node cluster (slurmctld + slurmd on this machine, two stand-in GPUs),
running whole arms on the vLLM test double: success, two arms on two GPUs, a job killed by its time limit,
stop_run (Ctrl-C) on running and pending jobs, a leftover job of an earlier attempt, the podman and docker
container paths, and the doctor's checks. Plus the pure parts (options, the shared-storage rule, messages).

Needs `bash .ci/slurm-up.sh` (and `bash .ci/docker-up.sh` for the container paths); with CI set, no
cluster is a failure. Marked slurm (and docker for the container paths); the pure tests are unmarked.
"""
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import MODEL_A, MODEL_B, double_config, leftover_servers, server_cmd
from fabricate import fabricate_run
from slurm_fixtures import CDI_KIND, DOUBLE_IN_IMAGE, jobs_of, squeue, wait_for
from kit.cli import main
from kit.errors import BadInput
from kit.options import RunOptions
from kit.run import open_resume
from kit.runtimes import ArmJob
from kit.runtimes.slurm import SlurmRuntime
from kit.runtimes.slurm.client import slurm_options
from kit.runtimes.slurm.follow import exit_status, failure_line
from kit.runtimes.slurm.probe import judge_shared
from kit.runtimes.slurm.runtime import START_FAILED
from kit.workload.options import ArmOptions

HANG = [{"on": "startup", "action": "never_ready"}]    # the double never binds its port: the arm runs on
OPTIONS = RunOptions(tables=(1,), runtime="slurm")      # what kit doctor passes to a runtime's checks


def make_job(rid, arm, cmd, ready_timeout=30, repeat=1):
    argv = ArmOptions(arm=arm, run_id=rid, model_a=MODEL_A, model_b=MODEL_B, server_cmd=cmd,
                      ready_timeout=float(ready_timeout)).to_argv()
    return ArmJob(run_id=rid, unit=arm, repeat=repeat, argv=argv)


def runtime(**kw):
    return SlurmRuntime(**dict(dict(python=sys.executable, poll_s=0.5, tail_s=0.2), **kw))


def run_in_thread(rt, job, out):
    """run_arm in a thread (as kit run does); returns (thread, result dict with code and lines)."""
    result = {"lines": []}
    t = threading.Thread(target=lambda: result.update(code=rt.run_arm(job, out, result["lines"].append)))
    t.start()
    return t, result


def record(out):
    return json.loads((Path(out) / "slurm.json").read_text())


def last_error(out):
    return [line for line in (Path(out) / "workload.log").read_text().splitlines() if "arm failed:" in line][-1]


def ok_total(out):
    events = [json.loads(line) for line in (Path(out) / "events.jsonl").read_text().splitlines()]
    return events[-1]["kind"] == "total" and events[-1]["ok"] is True


def job_states(rid):
    return dict(jobs_of(rid))


# -- against the cluster -----------------------------------------------------------------------------

@pytest.mark.slurm
def test_an_arm_runs_as_one_batch_job(slurm_run_id, tmp_path):
    rt, out = runtime(), tmp_path / "l1" / "r1"
    lines = []
    code = rt.run_arm(make_job(slurm_run_id, "l1", server_cmd(double_config(marker=slurm_run_id))), out, lines.append)
    assert code == 0, (out / "workload.log").read_text()
    assert ok_total(out)
    rec = record(out)
    assert rec["state"] == "COMPLETED" and rec["exit_code"] == "0:0"
    assert rec["node"] == socket.gethostname().split(".")[0]
    assert rec["gpus"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")            # one stand-in GPU, from --gres=gpu:1
    assert rec["gpus"]["SLURM_JOB_GPUS"] == rec["gpus"]["CUDA_VISIBLE_DEVICES"]
    shown = subprocess.run(["scontrol", "show", "job", rec["job_id"]], capture_output=True, text=True).stdout
    assert f"JobName=sleepkit-{slurm_run_id}-l1-r1" in shown and "TresPerNode=gres:gpu:1" in shown
    assert (out / "job.sbatch").read_text() == rt.batch_script(make_job(slurm_run_id, "l1", server_cmd(
        double_config(marker=slurm_run_id))), out)
    assert f"slurm: submitted job {rec['job_id']} (sleepkit-{slurm_run_id}-l1-r1)" in lines
    assert any(line.startswith(f"slurm: job {rec['job_id']} RUNNING on ") for line in lines)
    assert any("prompt B round 3" in line for line in lines)            # the workload's progress, streamed
    assert "arm failed:" not in (out / "workload.log").read_text()
    assert not leftover_servers(slurm_run_id)


@pytest.mark.slurm
def test_a_job_that_cannot_run_or_be_submitted_fails_its_arm_with_slurms_words(slurm_run_id, tmp_path):
    job = make_job(slurm_run_id, "l1", server_cmd(double_config(marker=slurm_run_id)))
    code = runtime(python="/nonexistent/python3").run_arm(job, tmp_path / "a", lambda line: None)
    rec = record(tmp_path / "a")
    assert code == 127 and (rec["state"], rec["exit_code"]) == ("FAILED", "127:0")
    assert f"arm failed: Slurm job {rec['job_id']} ended FAILED (reason NonZeroExitCode, exit 127:0)" in last_error(
        tmp_path / "a")
    code = runtime(partition="nosuchpartition").run_arm(job, tmp_path / "b", lambda line: None)
    assert code == START_FAILED and record(tmp_path / "b")["state"] == "NOT_SUBMITTED"
    assert "sbatch refused the job: sbatch: error: invalid partition specified: nosuchpartition" in last_error(
        tmp_path / "b")


@pytest.mark.slurm
def test_two_arms_at_once_get_different_gpus(slurm_run_id, tmp_path):
    rt = runtime()
    runs = [run_in_thread(rt, make_job(slurm_run_id, arm, server_cmd(double_config(marker=slurm_run_id))), tmp_path / arm)
            for arm in ("l1", "l2")]
    for t, _ in runs:
        t.join(120)
    assert [r["code"] for _, r in runs] == [0, 0]
    a, b = record(tmp_path / "l1"), record(tmp_path / "l2")
    assert a["start"] <= b["end"] and b["start"] <= a["end"], "the two jobs did not overlap"
    assert {a["gpus"]["CUDA_VISIBLE_DEVICES"], b["gpus"]["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
    assert ok_total(tmp_path / "l1") and ok_total(tmp_path / "l2")


@pytest.mark.slurm
def test_a_job_killed_by_its_time_limit_fails_only_its_arm(slurm_run_id, tmp_path):
    rt = runtime(time_limit="1")     # one minute: Slurm's smallest; the controller kills it within ~30 s after
    slow = run_in_thread(rt, make_job(slurm_run_id, "l1", server_cmd(double_config(HANG, marker=slurm_run_id)), 600),
                         tmp_path / "slow")
    fast = run_in_thread(rt, make_job(slurm_run_id, "l2", server_cmd(double_config(marker=slurm_run_id))), tmp_path / "fast")
    fast[0].join(120)
    assert fast[1]["code"] == 0 and ok_total(tmp_path / "fast")
    assert slow[0].is_alive(), "the slow arm should still be running"
    slow[0].join(150)
    assert slow[1]["code"] != 0
    rec = record(tmp_path / "slow")
    assert (rec["state"], rec["reason"]) == ("TIMEOUT", "TimeLimit")
    error = last_error(tmp_path / "slow")
    assert f"Slurm job {rec['job_id']} ended TIMEOUT (reason TimeLimit" in error and "--slurm-time" in error
    assert slow[1]["lines"][-1] == error                                   # shown as it happened, too
    wait_for(lambda: not leftover_servers(slurm_run_id), 30, "the double's servers gone after the time limit")


@pytest.mark.slurm
def test_stop_run_cancels_running_and_pending_jobs(slurm_run_id, tmp_path):
    rt = runtime()
    hang = server_cmd(double_config(HANG, marker=slurm_run_id))
    runs = [run_in_thread(rt, make_job(slurm_run_id, arm, hang, 600), tmp_path / arm) for arm in ("l1", "l2", "nosleep")]
    wait_for(lambda: sorted(job_states(slurm_run_id).values()) == ["PENDING", "RUNNING", "RUNNING"], 60,
             "two jobs running (one per GPU) and one pending")
    wait_for(lambda: sum((tmp_path / a / "server-A.log").exists() for a in ("l1", "l2", "nosleep")) == 2, 30,
             "both running arms started server A")
    cancelled = rt.stop_run(slurm_run_id)
    assert len(cancelled) == 3
    assert not squeue("-j", ",".join(cancelled), "-o", "%i").stdout.strip()   # returned only once all are gone
    for t, _ in runs:
        t.join(60)
    for arm, (_, r) in zip(("l1", "l2", "nosleep"), runs):
        assert r["code"] != 0 and record(tmp_path / arm)["state"] == "CANCELLED"
        assert "ended CANCELLED" in last_error(tmp_path / arm)
    wait_for(lambda: not leftover_servers(slurm_run_id), 30, "the double's servers gone after scancel")
    code = rt.run_arm(make_job(slurm_run_id, "l1", hang), tmp_path / "late", lambda line: None)
    assert code == START_FAILED and "being stopped" in last_error(tmp_path / "late")   # nothing new submitted


@pytest.mark.slurm
def test_a_leftover_job_of_an_earlier_attempt_is_cancelled_first(slurm_run_id, tmp_path):
    hang = server_cmd(double_config(HANG, marker=slurm_run_id))
    earlier = run_in_thread(runtime(), make_job(slurm_run_id, "l1", hang, 600), tmp_path / "first")
    wait_for(lambda: list(job_states(slurm_run_id).values()) == ["RUNNING"], 60, "the earlier attempt running")
    old = list(job_states(slurm_run_id))[0]
    # a new `kit run --resume` (a fresh runtime) resubmits the same arm repeat
    code = runtime().run_arm(make_job(slurm_run_id, "l1", server_cmd(double_config(marker=slurm_run_id))), tmp_path / "again",
                             lambda line: None)
    assert code == 0 and ok_total(tmp_path / "again")
    earlier[0].join(60)
    assert record(tmp_path / "first")["state"] == "CANCELLED" and record(tmp_path / "first")["job_id"] == old
    assert record(tmp_path / "again")["job_id"] != old


def container_runtime(tool, image):
    access = {"podman": dict(gpu_access="cdi", cdi_kind=CDI_KIND), "docker": dict(gpu_access="env")}[tool]
    return runtime(container=tool, image=image, **access)


def devices_cmd(config):
    """The double in the image, after printing the GPU devices and CUDA_VISIBLE_DEVICES it sees."""
    double = f"python3 {DOUBLE_IN_IMAGE} --config {shlex.quote(json.dumps(config))}"
    script = 'echo "DEVICES $(ls /dev | grep sleepkit-gpu | tr "\\n" " ")CVD=$CUDA_VISIBLE_DEVICES"; exec ' + double
    return "sh -c " + shlex.quote(script + ' "$@"') + " sh"


@pytest.mark.slurm
@pytest.mark.docker
@pytest.mark.parametrize("tool", ["podman", "docker"])
def test_the_container_path_runs_an_arm(tool, slurm_run_id, tmp_path, request):
    image = request.getfixturevalue(f"{tool}_image")
    out = tmp_path / "l1"
    code = container_runtime(tool, image).run_arm(make_job(slurm_run_id, "l1", devices_cmd(double_config(marker=slurm_run_id))),
                                                  out, lambda line: None)
    assert code == 0, (out / "workload.log").read_text()
    assert ok_total(out) and (out / "server-A.log").exists() and (out / "env.json").exists()
    gpu = record(out)["gpus"]["SLURM_JOB_GPUS"]
    seen = next(line for line in (out / "server-A.log").read_text().splitlines() if line.startswith("DEVICES"))
    if tool == "podman":   # CDI: exactly the job's GPU, numbered from 0 inside
        assert seen == f"DEVICES sleepkit-gpu{gpu} CVD=0"
    else:                  # env: Slurm's numbering passed through
        assert seen == f"DEVICES CVD={gpu}"
    assert not containers(tool, slurm_run_id)


def containers(tool, rid):
    r = subprocess.run([tool, "ps", "-a", "-q", "--filter", f"label=sleepkit.run={rid}"], capture_output=True,
                       text=True, timeout=60)
    return r.stdout.split()


@pytest.mark.slurm
@pytest.mark.docker
def test_stop_run_leaves_no_container(slurm_run_id, tmp_path, podman_image):
    rt = container_runtime("podman", podman_image)
    t, result = run_in_thread(rt, make_job(slurm_run_id, "l1", devices_cmd(double_config(HANG, marker=slurm_run_id)), 600),
                              tmp_path / "l1")
    wait_for(lambda: containers("podman", slurm_run_id), 60, "the arm's container running")
    wait_for(lambda: "DEVICES" in (tmp_path / "l1" / "server-A.log").read_text()
             if (tmp_path / "l1" / "server-A.log").exists() else False, 60, "server A started in the container")
    rt.stop_run(slurm_run_id)
    assert not containers("podman", slurm_run_id)
    assert not jobs_of(slurm_run_id)
    t.join(60)
    assert result["code"] != 0 and record(tmp_path / "l1")["state"] == "CANCELLED"


@pytest.mark.slurm
def test_doctor_checks_pass_on_the_cluster_and_name_a_bad_partition(slurm_cluster, tmp_path):
    checks = runtime(partition=slurm_cluster).doctor_checks(OPTIONS, tmp_path / "results", probe_timeout=60)
    assert [c.name for c in checks] == ["slurm tools", "slurm partition", "slurm gpu gres", "slurm submission",
                                        "shared results dir", "workload on the node"]
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert "one-node cluster" in checks[4].detail
    assert not list((tmp_path / "results").glob(".kit-doctor-*"))        # the probe files are removed
    bad = runtime(partition="nosuchpartition").doctor_checks(OPTIONS, tmp_path / "results")
    assert not bad[1].ok and slurm_cluster in bad[1].fix and "KIT_SLURM_PARTITION" in bad[1].fix
    assert not bad[3].ok and "invalid partition" in bad[3].detail
    assert [c.name for c in bad][-1] == "slurm submission"     # no probe job when the options are wrong


# -- pure parts --------------------------------------------------------------------------------------

def test_options_come_from_the_command_line_then_config():
    got = slurm_options({"partition": "clip", "account": "", "extra": "--mem=8G --constraint='a|b'"},
                        {"account": "cfga", "time_limit": "9"})
    assert got == {"partition": "clip", "account": "cfga", "time_limit": "9", "extra": ["--mem=8G", "--constraint=a|b"]}
    assert slurm_options({}, None) == {"partition": None, "account": None, "time_limit": None, "extra": []}
    with pytest.raises(BadInput, match="must not set --output"):
        slurm_options({"extra": "--output=/tmp/x"}, {})


def test_the_kit_slurm_variables_are_options_typed_by_the_environment(tmp_path, monkeypatch, capsys):
    """KIT_SLURM_* are read where the command line is (click), so the manifest records them; a flag wins."""
    monkeypatch.setenv("KIT_SLURM_PARTITION", "envp")
    monkeypatch.setenv("KIT_SLURM_TIME", "2:00:00")
    monkeypatch.setenv("KIT_SLURM_ARGS", "--mem=8G")
    argv = ["run", "1", "--dry-run", *map(str, slurm_run_args(tmp_path / "results", "slurm-env", "--slurm-time", "1:00:00"))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --partition=envp" in out and "#SBATCH --mem=8G" in out
    assert "#SBATCH --time=1:00:00" in out and "--time=2:00:00" not in out


def interrupted_slurm_run(results):
    """A fabricated Slurm run on partition gpu with a 1 h limit, its l1 job not done."""
    run_dir = fabricate_run(results, (1,), run_id="cut", complete=False, arm_opts={"l1": {"skip": True}})
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["options"].update(runtime="slurm", slurm_partition="gpu", slurm_time="1:00:00")
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def test_a_resume_may_change_how_jobs_are_scheduled_not_where(tmp_path, monkeypatch, capsys):
    """After a TIMEOUT the hint says: raise --slurm-time (or KIT_SLURM_TIME) and resume; the partition stays."""
    interrupted_slurm_run(tmp_path)
    resume = ["run", "--resume", "cut", "--results-dir", str(tmp_path), "--dry-run"]
    assert main(resume + ["--slurm-time", "3:00:00"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --time=3:00:00" in out and "#SBATCH --partition=gpu" in out
    monkeypatch.setenv("KIT_SLURM_TIME", "4:00:00")
    assert main(resume) == 0 and "#SBATCH --time=4:00:00" in capsys.readouterr().out
    assert main(resume + ["--slurm-partition", "other"]) == 2
    assert "--slurm-partition 'other' conflicts with the run's 'gpu'" in capsys.readouterr().err
    with ExitStack() as held:
        _, record, options = open_resume(tmp_path, "cut", {"slurm_time": "4:00:00"}, ["kit"], held)
    assert options.slurm_time == record.to_dict()["options"]["slurm_time"] == "4:00:00"     # recorded when written


def test_dry_run_script_carries_the_options_and_no_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_sleepkit_test_not_a_real_token")
    rt = SlurmRuntime(partition="gpu", account="proj", time_limit="1:00:00", extra=["--mem=8G"], gpu_request="gpus")
    script = rt.batch_script(make_job("r1", "l1", "python3 -m vllm.entrypoints.openai.api_server"), tmp_path)
    for line in ("--gpus=1", "--partition=gpu", "--account=proj", "--time=1:00:00", "--mem=8G", "--no-requeue",
                 f"--output={tmp_path}/workload.log", "--job-name=sleepkit-r1-l1-r1"):
        assert f"#SBATCH {line}\n" in script
    assert "-m kit.workload --arm l1" in script and f"--out {tmp_path}" in script
    assert "hf_sleepkit" not in script
    podman = SlurmRuntime(container="podman", image="sleepkit:t").batch_script(make_job("r1", "l1", "x"), tmp_path)
    assert "${HF_TOKEN:+--env HF_TOKEN}" in podman and "hf_sleepkit" not in podman
    assert 'GPU_ARGS+=(--device "nvidia.com/gpu=$i")' in podman and f"-v {tmp_path}:/sleepkit/out" in podman
    with pytest.raises(ValueError, match="needs --image"):
        SlurmRuntime(container="docker")


def test_shared_storage_rule(tmp_path):
    yes = {"node": "n1", "sees_probe": "yes", "usable": "ok"}
    assert judge_shared(tmp_path, yes, "COMPLETED", "nfs", ["n1", "n2"], "login").ok
    assert judge_shared(tmp_path, yes, "COMPLETED", "ext4", ["here"], "here").ok          # one node: this host
    no_reply = judge_shared(tmp_path, None, "COMPLETED", "ext4", ["n1"], "login")
    assert not no_reply.ok and "no reply" in no_reply.detail and "--results-dir" in no_reply.fix
    other = judge_shared(tmp_path, dict(yes, sees_probe="no"), "COMPLETED", "ext4", ["n1"], "login")
    assert not other.ok and "did not find the file written here" in other.detail
    local = judge_shared(tmp_path, yes, "COMPLETED", "ext4", ["here", "n2"], "here")
    assert not local.ok and "local ext4" in local.detail


def test_end_states_give_statuses_and_messages():
    assert exit_status("COMPLETED", "0:0") == 0
    assert exit_status("FAILED", "1:0") == 1
    assert exit_status("TIMEOUT", "0:15") == 143
    assert exit_status("NODE_FAIL", "0:0") == 1
    d = {"state": "PREEMPTED", "reason": "None", "exit_code": "0:15", "node": "n3", "run_time": "00:10:00"}
    line = failure_line("42", d, workload_said=True, run_id="r7")
    assert line.startswith("arm failed: Slurm job 42 ended PREEMPTED (reason None, exit 0:15) on n3 after 00:10:00")
    assert "`kit run --resume r7`" in line
    assert "`kit sweep --resume r7`" in failure_line("42", d, workload_said=True, run_id="r7", command="sweep")
    assert failure_line("42", dict(d, state="FAILED"), workload_said=True) is None    # the workload said why
    assert "FAILED" in failure_line("42", dict(d, state="FAILED", exit_code="127:0"), workload_said=False)
    assert failure_line("42", dict(d, state="COMPLETED"), workload_said=False) is None


# -- kit run --runtime slurm, end to end -------------------------------------------------------------

def slurm_run_args(results, marker, *extra):
    return ["--runtime", "slurm", "--results-dir", results, "--model-a", MODEL_A, "--model-b", MODEL_B,
            "--slurm-python", sys.executable, "--server-cmd", server_cmd(double_config(marker=marker)), *extra]


@pytest.mark.slurm
def test_kit_run_all_five_tables_on_slurm(slurm_cluster, tmp_path):
    from conftest import kit
    results = tmp_path / "results"
    r = kit("run", "--all", *slurm_run_args(results, "slurm-all", "--fixed-output"), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] is True and m["runtime"]["name"] == "slurm" and m["runtime"]["sbatch_options"][0] == "--gres=gpu:1"
    assert sorted(j["unit"] for j in m["jobs"]) == sorted(["l1", "nosleep", "l1-fp8", "l1-nowarm", "l2"])
    for j in m["jobs"]:
        assert j["ok"] and j["slurm"]["state"] == "COMPLETED" and j["slurm"]["node"]
        assert j["slurm"]["gpus"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    for n in range(1, 6):
        assert f"Table {n}:" in r.stdout
    assert "slurm: job" in r.stdout and " RUNNING on " in r.stdout
    submitted = [j["unit"] for j in sorted(m["jobs"], key=lambda j: int(j["slurm"]["job_id"]))]
    assert submitted == ["nosleep", "l2", "l1-nowarm", "l1-fp8", "l1"]     # the plan's order, longest first
    assert not jobs_of(run.name)


@pytest.mark.slurm
def test_kit_run_on_slurm_ctrl_c_cancels_every_job_and_resume_finishes(slurm_cluster, tmp_path):
    from conftest import ROOT, kit, kit_cmd
    results = tmp_path / "results"
    slow = dict(double_config(marker="slurm-ctrl-c"))
    slow["models"] = {k: {"delays": dict(v["delays"], startup=4)} for k, v in slow["models"].items()}
    args = ["--runtime", "slurm", "--results-dir", str(results), "--model-a", MODEL_A, "--model-b", MODEL_B,
            "--slurm-python", sys.executable, "--server-cmd", server_cmd(slow), "--ready-timeout", "120"]
    proc = subprocess.Popen(kit_cmd("run", "1", "3", *args), cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"),
                            start_new_session=True)
    submitted = []
    for line in proc.stdout:
        submitted += [line.split("slurm: submitted job ")[1].split()[0]] if "slurm: submitted job" in line else []
        if len(submitted) == 3:            # two running on the two stand-in GPUs, one pending
            os.killpg(proc.pid, signal.SIGINT)      # as a terminal's Ctrl-C: to every process of the group
            break
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    assert not jobs_of(run.name)                                  # every job cancelled, nothing queued
    interrupted = json.loads((run / "manifest.json").read_text())
    assert interrupted["complete"] is False
    assert sorted(j["slurm"]["job_id"] for j in interrupted["jobs"]) == sorted(submitted)   # each has its record
    assert not leftover_servers("slurm-ctrl-c")
    r = kit("run", "--resume", run.name, "--results-dir", results, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] is True and len(m["resumes"]) == 1
    assert sorted(j["unit"] for j in m["jobs"]) == ["l1", "l1-nowarm", "nosleep"]


@pytest.mark.slurm
def test_two_partitions_run_the_same_arms_side_by_side(slurm_cluster, tmp_path):
    from conftest import kit
    results = tmp_path / "results"
    r = kit("run", "3", "--run-id", "pair", *slurm_run_args(results, "slurm-pair", "--slurm-partition", "gpu,gpu2"),
            timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert sorted(p.name for p in results.iterdir()) == ["pair-gpu", "pair-gpu2"]
    for name, partition in (("pair-gpu", "gpu"), ("pair-gpu2", "gpu2")):
        m = json.loads((results / name / "manifest.json").read_text())
        assert m["group"] == {"id": "pair", "runs": ["pair-gpu", "pair-gpu2"]}
        assert f"--partition={partition}" in m["runtime"]["sbatch_options"] and m["complete"]
        shown = [j["slurm"]["job_id"] for j in m["jobs"]]
        assert len(shown) == 2
    assert "compare, ratio b/a of the medians" in " ".join(r.stdout.split()) and "pair-gpu2" in r.stdout   # wrapped


def test_dry_run_prints_the_batch_scripts(tmp_path, capsys):
    from kit.cli import main
    code = main(["run", "1", "--dry-run", *map(str, slurm_run_args(tmp_path / "results", "slurm-dry", "--slurm-partition",
                                                                   "a,b", "--slurm-time", "1:00:00"))])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "partition a: a run of its own" in out and "partition b: a run of its own" in out
    assert out.count("#!/bin/bash") == 2 and "#SBATCH --partition=a" in out
    assert "#SBATCH --time=1:00:00" in out and "#SBATCH --gres=gpu:1" in out
    assert f"--chdir={tmp_path / 'results'}/<run-id>/nosleep/r1" in out      # where the results will land
    assert not (tmp_path / "results").exists()
