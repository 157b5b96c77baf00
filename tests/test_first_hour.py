"""A user's first hour (issue 18): the pre-flight's checklist, commands that run as printed, run ids and
folders everywhere, 80 columns, the demo, Ctrl-C, make help, the test setup's apt installs."""
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, double_config, server_cmd
from fabricate import fabricate_run
from kit import doctor, hints, plot, progress, runs
from kit.plot import specs
from kit.checks import Check
from kit.cli import main
from kit.errors import BadInput, Checklist
from kit.results import load_run, render, tables
from kit.runtimes import local
from kit.schedule import Scheduler

REFERENCE = ROOT / "results" / "reference"
VLLM = "python3 -m vllm.entrypoints.openai.api_server"
VENV_KIT = ROOT / ".venv" / "bin" / "kit"


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. the pre-flight: a checklist, root cause first --------------------------------------------------
def test_preflight_lists_every_failed_check_root_cause_first_then_kit_doctor(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor.host_gpus, "nvml_gpus", lambda: None)          # no NVIDIA driver here
    monkeypatch.setattr(local, "check_vllm_import", lambda cmd: Check("vllm", False, "python3 cannot import vllm",
                                                                       "install vLLM"))
    extra = lambda options, results_dir, runtime, env: [Check("extra", False, "an added check failed", "fix it")]
    monkeypatch.setattr(doctor, "CHECKS", doctor.CHECKS + [extra])            # the list takes more checks
    results = tmp_path / "results"
    code, out, err = run_main(capsys, "run", "1", "--runtime", "local", "--server-cmd", VLLM, "--results-dir", results)
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert lines[0] == "kit: error: pre-flight: 3 of 5 checks failed; nothing was created"
    assert lines[1].startswith("  gpus: NVML does not start (no NVIDIA driver") and "-> install the NVIDIA driver" in lines[1]
    assert lines[2] == "  vllm: python3 cannot import vllm -> install vLLM"
    assert lines[3] == "  extra: an added check failed -> fix it"
    assert re.fullmatch(r"  run `.* doctor --runtime local` for the details", lines[4]) and len(lines) == 5
    assert not results.exists()


def test_kit_doctor_prints_every_check_and_its_verdict_is_the_exit_status(capsys, tmp_path, monkeypatch):
    """Through main(), the one edge: no SystemExit, nothing on stderr; 1 when a check failed, else 0."""
    monkeypatch.setattr(doctor.host_gpus, "nvml_gpus", lambda: None)          # no NVIDIA driver here
    args = ("doctor", "--runtime", "local", "--results-dir", tmp_path)
    code, out, err = run_main(capsys, *args, "--server-cmd", server_cmd(double_config()))
    assert (code, err) == (0, "") and "FAIL" not in out and "results dir" in out
    code, out, err = run_main(capsys, *args, "--server-cmd", VLLM)
    assert (code, err) == (1, "") and "FAIL  gpus: NVML does not start" in out and "results dir" in out


def test_other_errors_stay_one_line_and_a_checklist_joins_into_one_for_records():
    assert BadInput("two\nlines", "a hint").lines() == ["two lines; a hint"]
    e = Checklist("head", ["a: x -> y", "b: z"], "see more")
    assert e.lines() == ["head", "a: x -> y", "b: z", "see more"] and "\n" not in e.line()


def test_a_long_detail_is_summarised_in_the_checklist():
    detail = "no way to give a container the GPU here (toolkit: " + "x" * 200 + ")"
    assert doctor.summary(detail) == "no way to give a container the GPU here (...)"
    assert doctor.summary("short (kept)") == "short (kept)"


# -- 2. every printed command runs as printed -------------------------------------------------------------
def test_resume_and_doctor_hints_follow_how_the_kit_was_started():
    make = {"KIT_VIA_MAKE": "1"}
    assert hints.resume_command("r1", "results", make) == "make resume RUN=r1"
    assert hints.resume_command("r1", "/tmp/my res", make) == "make resume RUN=r1 RESULTS='/tmp/my res'"
    assert hints.doctor_command("local", make) == "make doctor RUNTIME=local"
    assert hints.resume_command("r1", "out", {}).endswith(" run --resume r1 --results-dir out")
    assert hints.resume_command("r1", "out", {}, sweep=True).endswith(" sweep --resume r1 --results-dir out")
    assert hints.resume_command("r1", "results", make, sweep=True) == "make resume RUN=r1"   # kit run --resume does it


def test_the_venv_kit_not_on_path_is_printed_by_its_full_path_and_runs_as_printed(tmp_path):
    if not VENV_KIT.exists():
        pytest.skip("no .venv/bin/kit (make test-fast creates it)")
    kit = hints.kit_command(str(VENV_KIT), {"PATH": "/usr/bin:/bin"})
    assert kit == str(VENV_KIT)
    assert hints.kit_command(str(VENV_KIT), {"PATH": str(VENV_KIT.parent)}) == "kit"
    printed = hints.spelled("list the runs with `kit ls`", {"PATH": "/usr/bin"})
    assert printed.startswith("list the runs with `") and "`kit ls`" not in printed
    r = subprocess.run(shlex.split(hints.resume_command("nosuch", tmp_path, {})) + ["--dry-run"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ, PATH="/usr/bin:/bin"), timeout=120)
    assert r.returncode == 2 and "cannot resume 'nosuch'" in r.stderr      # the command itself ran


# -- 3. a run id or a run folder, everywhere --------------------------------------------------------------
def test_every_run_command_takes_a_run_folder(capsys, tmp_path, monkeypatch):
    run_dir = fabricate_run(tmp_path / "elsewhere", (1,), run_id="mine")
    monkeypatch.chdir(tmp_path)
    for args in (["table", run_dir], ["show", run_dir], ["compare", run_dir, "published"],
                 ["bundle", "elsewhere/mine", "--no-figures"]):
        code, out, err = run_main(capsys, *args)
        assert code == 0, (args, err)
    assert (tmp_path / "elsewhere" / "mine.tar.gz").is_file()
    code, out, err = run_main(capsys, "table", "no/such/run")
    assert code == 2 and "is not a run id nor a run folder" in err


def test_a_reference_run_id_is_found_and_the_kit_says_which_run_it_took(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run_main(capsys, "compare", "h200-vllm0.24.0-twins-host", "h200-vllm0.24.0-twins-docker",
                              "--table", "1")
    assert code == 0, err
    assert "h200-vllm0.24.0-twins-docker" in out
    assert "using the reference run results/reference/h200-vllm0.24.0-twins-host" in err


def test_plot_of_a_committed_reference_redraws_its_committed_figures_and_says_so(capsys, tmp_path, monkeypatch):
    run_dir = fabricate_run(tmp_path / "results" / "reference", (1,), run_id="ref")
    monkeypatch.setattr(plot, "plot_run", lambda run, numbers, out=None: [out or run.source / "figures"])  # where, not how
    code, out, err = run_main(capsys, "plot", run_dir)
    assert code == 0 and out.strip() == str(run_dir / "figures")
    assert "committed reference run: commit what changes in its figures/" in err
    code, out, err = run_main(capsys, "plot", run_dir, "--out", tmp_path / "mine")
    assert out.strip() == str(tmp_path / "mine") and "committed" not in err


# -- 5. 80 columns; kit ls lists the tables with data, in table order ---------------------------------------
def widest(text):
    return max(len(line) for line in text.splitlines())


def test_ls_and_show_of_the_references_fit_80_columns_and_wide_shows_everything(capsys):
    code, out, _ = run_main(capsys, "ls", "--results-dir", REFERENCE)
    assert code == 0 and widest(out) <= 80
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["h100-vllm0.24.0-twins"][2] == "1-5"                   # run order 1,4,5,3,2 -> table order
    assert rows["h100-vllm0.24.0-twins-seed-l2"][2] == "5"             # Table 4's arms are both not run
    code, wide, _ = run_main(capsys, "ls", "--wide", "--results-dir", REFERENCE)
    assert widest(wide) > 80 and "NVIDIA H100 80GB HBM3" in wide and "runtime" in wide
    for run in runs.listing(REFERENCE):
        code, out, err = run_main(capsys, "show", run["run"], "--results-dir", REFERENCE)
        assert code == 0 and widest(out) <= 80 and err == "", out + err
    code, out, _ = run_main(capsys, "show", "h200x2-vllm0.24.0-twins", "--wide", "--results-dir", REFERENCE)
    assert "2026-11-29T23:08:32.232Z .. 2026-11-29T23:14:59.383Z" in out


def test_table_list_compresses_runs_of_numbers():
    assert [runs.table_list(x) for x in ([1, 2, 3, 4, 5], [4, 5], [1, 2, 3, 5], [], [2])] == ["1-5", "4,5", "1-3,5",
                                                                                               "-", "2"]


class Job:
    def __init__(self, key):
        self.key = key


class Lane:
    def __init__(self, label):
        self.label = label


def test_the_live_lines_fit_80_columns():
    p = progress.Progress(lambda job: (3600, "previous repeat"), tty=False)
    p.plan([Job(f"l2@online_sleep2_nosleep r{i}") for i in range(10)])
    for lane, job in (("gpu 0", "l1-nowarm r2"), ("gpu GPU-0123456789abcdef", "l2@online_sleep2_nosleep r10")):
        p.started(Job(job), Lane(lane))
        p.running[lane]["step"] = "prompt B round 3"
    lines = p._render().plain.splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), lines
    assert re.fullmatch(r"\[gpu 0\] l1-nowarm r2: prompt B round 3 0:00 \(job 0:00, ETA ~\d+:\d\d( from previous "
                        r"repeat)?\)", lines[0]), lines[0]
    assert lines[1].endswith("...") and lines[2].startswith("waiting: ")


# -- 6. the demo's marks: manifest, tables, figures -----------------------------------------------------
def test_a_run_on_the_test_double_says_so_in_every_header(tmp_path):
    from kit.options import RunOptions
    double = RunOptions(tables=(1,), server_cmd=f"python3 {ROOT}/tests/vllm_double.py")
    assert doctor.stand_in(double) == doctor.TEST_DOUBLE == "test double (no GPU, no vLLM)"
    assert doctor.stand_in(RunOptions(tables=(1,), server_cmd=VLLM)) is None
    run_dir = fabricate_run(tmp_path / "results", (1,))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps(dict(manifest, stand_in=doctor.TEST_DOUBLE)))
    table = tables.build_table(load_run(run_dir), 1)
    first = "- test double (no GPU, no vLLM): not a result"
    assert render.text([table]).splitlines()[2] == first and render.markdown(table).splitlines()[2] == first
    assert specs.provenance(table.run)[0] == "test double (no GPU, no vLLM): not a result"
    assert "test double" in runs.listing_text(runs.listing(tmp_path / "results"))


@pytest.mark.e2e
def test_make_demo_runs_table_1_on_the_double_and_marks_everything(tmp_path):
    started = time.monotonic()
    r = subprocess.run(["make", "demo", f"DEMO={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=top_level_make())
    assert r.returncode == 0, r.stdout + r.stderr
    seconds = time.monotonic() - started
    print(f"make demo took {seconds:.1f} s")                              # reported, never a pass/fail
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "manifest.json").read_text())["stand_in"] == doctor.TEST_DOUBLE
    assert r.stdout.splitlines()[2] == "test double (no GPU, no vLLM): shows how the kit works; not a result"
    assert "- test double (no GPU, no vLLM): not a result" in r.stdout
    assert "test double (no GPU, no vLLM)" in (run_dir / "tables" / "table1.md").read_text()


def top_level_make():
    """The environment of a make typed at a prompt, also when these tests run under `make test`."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}


# -- 7 + 2. Ctrl-C of a run started with make; the printed `make resume` finishes it ------------------------
@pytest.mark.e2e
def test_ctrl_c_of_make_table1_says_sigint_once_per_job_and_the_printed_make_resume_finishes(tmp_path):
    double = f"{ROOT}/.venv/bin/python {ROOT}/tests/vllm_double.py"
    args = f"--server-cmd '{double}' --model-a double-a --model-b double-b"
    proc = subprocess.Popen(["make", "table1", "RUNTIME=local", f"RESULTS={tmp_path}", f"ARGS={args}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(top_level_make(), PYTHONUNBUFFERED="1"))
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(r"nosleep r1: done\s+load B round 1 .* ok", line):
            os.killpg(proc.pid, signal.SIGINT)                            # what Ctrl-C in a terminal does
            break
    out, err = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert "SIGINT received: stopping every job of the run" in out
    after = out.split("SIGINT received", 1)[1].splitlines()[1:]
    assert after == ["[all GPUs] nosleep r1: interrupted (SIGINT)"], after         # no replayed workload lines
    assert "signal 15" not in out + err and "Traceback" not in out + err
    printed = re.search(r"`(make resume [^`]+)`", err).group(1)
    assert printed.startswith("make resume RUN=") and f"RESULTS={tmp_path}" in printed
    r = subprocess.run(printed, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300, env=top_level_make())
    assert r.returncode == 0, r.stdout + r.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "manifest.json").read_text())["complete"] is True


def test_a_lane_is_waited_for_even_when_its_thread_looks_stopped():
    """CPython 3.11: a Ctrl-C that interrupts Thread.join can mark a running thread stopped; join() must
    still wait until the lane's job has ended."""
    release, ended = threading.Event(), []

    def job(j, lane):
        release.wait(10)
        ended.append(j)
        return {"ok": True}

    s = Scheduler(["lane"], job)
    runner = threading.Thread(target=s.run, args=(["j"],))
    runner.start()
    deadline = time.monotonic() + 10
    while not getattr(s, "threads", None) and time.monotonic() < deadline:
        time.sleep(0.01)
    s.threads[0]._is_stopped = True              # what the interrupted join leaves behind
    assert s.join(timeout=0.3) is False and not ended
    release.set()
    assert s.join(timeout=10) is True and ended == ["j"]
    runner.join(10)


# -- 8. make help, the apt installs ------------------------------------------------------------------------
def test_make_help_lists_every_target():
    make = (ROOT / "Makefile").read_text()
    documented = {t for names in re.findall(r"^([a-z0-9 -]+):.*## ", make, re.M) for t in names.split()}
    r = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    assert {"test-fast", "resume", "demo"} <= listed
    assert documented - {f"table{n}" for n in range(1, 6)} <= listed and "table1..5" in listed


def test_apt_install_installs_only_what_is_missing_upgrades_nothing_named_and_says_what_it_upgrades(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text('#!/bin/sh\n[ "$3" = login ] && echo "install ok installed"; exit 0\n')
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n'
                                  'case "$*" in "install -s"*) echo "Inst login [1:4.13-u1] (1:4.13-u2 Debian)";'
                                  ' echo "Inst podman (4.3.1 Debian)";; esac\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    script = f'source {ROOT}/.ci/lib.sh; SUDO=""; say() {{ echo "say: $*"; }}; apt_install login podman'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}"))
    assert r.returncode == 0, r.stderr
    assert "say: installing podman" in r.stdout
    assert "say: also upgrading installed packages these need: login" in r.stdout
    install = (tmp_path / "calls").read_text().splitlines()[-1]
    assert "--no-upgrade" in install and install.endswith(" podman") and " login" not in install
    r = subprocess.run(["bash", "-c", script.replace("login podman", "login")], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}"))
    assert r.returncode == 0 and r.stdout == ""
