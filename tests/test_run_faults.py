"""kit run under faults (issue 19): one owner per run folder, run ids claimed atomically, a complete run
left alone by --resume, a full disk (on a small tmpfs the test mounts), an unreadable HF cache, and
Slurm client commands out of the terminal's Ctrl-C."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import ROOT, double_config, kit_cmd, leftover_servers, run_args
from fabricate import fabricate_run
from kit import doctor, layout, runlock
from kit import run as runner
from kit.cli import main
from kit.errors import BadInput, NotReady

CLI_ENV = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
DEADLINE = 120    # seconds any wait below may take before the test fails


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def kit(*args):
    return subprocess.run(kit_cmd(*args), capture_output=True, text=True, env=CLI_ENV, cwd=ROOT, timeout=DEADLINE)


def read_until(proc, text):
    """Lines of proc's stdout until one holds text (the process is killed when that takes too long)."""
    watchdog = threading.Timer(DEADLINE, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            if text in line:
                return line
        raise AssertionError(f"{text!r} never came; exit {proc.wait()}: {proc.stderr.read()}")
    finally:
        watchdog.cancel()


# -- one owner per run folder -------------------------------------------------------------------------

def slow_config(marker):
    cfg = double_config(marker=marker)
    for model in cfg["models"].values():
        model["delays"]["startup"] = 600        # the run stays in its first load until it is stopped
    return cfg


@pytest.mark.e2e
def test_a_run_being_run_cannot_be_resumed_or_started_again(results):
    cfg = slow_config("faults-lock")
    first = subprocess.Popen(kit_cmd("run", "--arm", "nosleep", *run_args(results, cfg), "--run-id", "X"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV, cwd=ROOT)
    try:
        read_until(first, "run X: tables")     # printed after the folder is owned and the manifest written
        manifest = (results / "X" / "manifest.json").read_bytes()
        for argv in (["run", "--resume", "X", "--results-dir", results],
                     ["run", "--arm", "nosleep", *run_args(results, cfg), "--run-id", "X"]):
            r = kit(*argv)
            assert r.returncode == 2, r.stdout + r.stderr
            assert r.stderr.startswith(f"kit: error: run X is being run by another kit run (pid {first.pid} on host ")
            assert len(r.stderr.strip().splitlines()) == 1
            assert (results / "X" / "manifest.json").read_bytes() == manifest       # changed nothing
        assert runlock.owner(results / "X") == f"pid {first.pid} on host {os.uname().nodename}"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=DEADLINE)
    assert first.returncode == 130
    assert runlock.owner(results / "X") is None and not leftover_servers("faults-lock")


def test_the_os_releases_the_lock_of_a_killed_owner(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from kit import runlock\n"
                               f"with runlock.hold({str(tmp_path)!r}):\n    print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=CLI_ENV)
    read_until(holder, "held")
    assert runlock.owner(tmp_path) == f"pid {holder.pid} on host {os.uname().nodename}"
    with pytest.raises(NotReady, match="is being run by another kit run"):
        with runlock.hold(tmp_path):
            pass
    holder.kill()
    holder.wait(DEADLINE)
    assert runlock.owner(tmp_path) is None
    with runlock.hold(tmp_path):
        assert runlock.owner(tmp_path) is not None     # held by this process now


def test_bundles_leave_the_lock_file_out(tmp_path):
    from kit.bundle import run_files
    run_dir = fabricate_run(tmp_path, (1,), run_id="locked")
    with runlock.hold(run_dir):
        assert (run_dir / layout.LOCK).is_file() and layout.LOCK not in run_files(run_dir)


# -- run ids ------------------------------------------------------------------------------------------

def claim_at_once(results, generated, n=8):
    barrier, got = threading.Barrier(n), []

    def one():
        barrier.wait()
        try:
            got.append(runner.claim(results, "20260101-000000-t1", lambda b: [b], generated))
        except BadInput as e:
            got.append(e)
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    return got


def test_generated_run_ids_never_collide(results):
    got = claim_at_once(results, generated=True)
    assert sorted(got) == sorted(["20260101-000000-t1"] + [f"20260101-000000-t1-{n}" for n in range(2, 9)])
    assert sorted(p.name for p in results.iterdir()) == sorted(got)


def test_a_given_run_id_is_claimed_once(results):
    got = claim_at_once(results, generated=False)
    assert got.count("20260101-000000-t1") == 1
    assert all("run '20260101-000000-t1' exists" in e.message for e in got if isinstance(e, BadInput))
    assert [p.name for p in results.iterdir()] == ["20260101-000000-t1"]


# -- resuming a complete run --------------------------------------------------------------------------

def test_resuming_a_complete_run_changes_nothing(tmp_path, capsys):
    run_dir = fabricate_run(tmp_path, (1,), run_id="done")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code, out, err = run_main(capsys, "run", "--resume", "done", "--results-dir", tmp_path)
    assert code == 0 and err == ""
    assert out == "run done is complete: nothing to resume, nothing changed (its tables: `kit table done`)\n"
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before      # no lock file either


# -- a full disk --------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk (skipped where this user may not mount one)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or 'mount failed').strip()}); root can")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk):
    """Write until the disk is full."""
    with open(Path(disk) / "filler", "ab", buffering=0) as f:
        for size in (1 << 16, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC


def leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")
                  if p.name.endswith((".tmp", ".part")) or p.suffixes[-2:] == [".tar", ".gz"])


def failed_checks(err):
    """The failed checks of a pre-flight checklist: its heading, one line per failed check, the doctor line."""
    lines = err.strip().splitlines()
    assert lines[0].startswith("kit: error: pre-flight: ") and "kit doctor" in lines[-1], err
    return [line.strip() for line in lines[1:-1]]


def test_the_preflight_wants_free_space_and_leaves_no_run_folder(small_disk, capsys):
    fill(small_disk)
    code, _, err = run_main(capsys, "run", "1", *run_args(small_disk, double_config(marker="faults-full")))
    assert code == 2
    assert [c for c in failed_checks(err) if c.startswith(f"results dir: {small_disk} has 0.0 GB free (need 1 GB)")]
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_a_manifest_the_disk_cannot_hold_leaves_no_run_folder(small_disk, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "RESULTS_DISK_GB", 0)
    fill(small_disk)
    code, _, err = run_main(capsys, "run", "1", *run_args(small_disk, double_config(marker="faults-full")))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "cannot start run" in err and "No space left on device" in err
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


@pytest.mark.e2e          # a job runs on the double (its server process) until the disk fills
def test_a_disk_full_mid_run_fails_the_job_stops_the_lane_and_keeps_the_manifest(small_disk, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "RESULTS_DISK_GB", 0)
    create = runner.create

    def create_then_fill(*args, **kw):
        work = create(*args, **kw)
        fill(small_disk)          # the disk fills up as the first job starts
        return work
    monkeypatch.setattr(runner, "create", create_then_fill)
    code, out, err = run_main(capsys, "run", "1", *run_args(small_disk, double_config(marker="faults-full")),
                              "--run-id", "full")
    assert code == 1, out + err
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err and "kit run --resume full" in err
    assert "FAILED" in out and "not used any more: " in out and "No space left on device" in out
    run_dir = small_disk / "full"
    manifest = json.loads((run_dir / "manifest.json").read_text())       # whole: the version create wrote
    assert manifest["complete"] is False and manifest["jobs"] == []
    started = [u for u in ("l1", "nosleep") if (run_dir / u).exists()]
    assert len(started) == 1, started                                     # the second job never started
    assert leftovers(small_disk) == [] and not leftover_servers("faults-full")


def test_a_bundle_on_a_full_disk_fails_in_one_line_and_leaves_no_file(small_disk, capsys):
    run_dir = fabricate_run(small_disk, (1,), run_id="done")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    fill(small_disk)
    code, out, err = run_main(capsys, "bundle", "done", "--results-dir", small_disk)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("kit: error: kit cannot write: No space left on device (writing ")
    assert leftovers(small_disk) == []
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_write_json_keeps_the_old_file_and_no_tmp_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    layout.write_json(path, {"ok": True})

    def no_space(self, *a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(OSError) as e:
        layout.write_json(path, {"ok": False})
    assert e.value.filename == str(path)
    assert json.loads(path.read_bytes()) == {"ok": True} and [p.name for p in tmp_path.iterdir()] == ["status.json"]


# -- pre-flight: an HF cache this user cannot read ----------------------------------------------------

def test_an_unreadable_hf_cache_is_a_failed_check_with_a_fix(tmp_path):
    hf = tmp_path / "hf"
    (hf / "hub").mkdir(parents=True)
    hf.chmod(0o700)
    argv = kit_cmd("run", "1", *run_args(tmp_path / "results", double_config(marker="faults-hf")),
                   "--model-a", "org/a", "--model-b", "org/b")
    if os.geteuid() == 0:      # root reads everything: drop the capabilities that let it, and own hf by nobody
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a folder unreadable")
        os.chown(hf, 65534, 65534)
        argv = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search", *argv]
    env = {k: v for k, v in CLI_ENV.items() if k != "HF_HUB_CACHE"}
    r = subprocess.run(argv, capture_output=True, text=True, env=dict(env, HF_HOME=str(hf)), cwd=ROOT,
                       timeout=DEADLINE)
    assert r.returncode == 2, r.stdout + r.stderr
    checks = failed_checks(r.stderr)
    assert len(checks) == 1 and checks[0].startswith(f"models: cannot read {hf}/hub/models--org--a")
    assert "Permission denied" in checks[0] and "HF_HOME" in checks[0]
    assert not (tmp_path / "results").exists()


# -- --gpus names a GPU this host does not have ---------------------------------------------------------

def test_a_gpu_nvml_does_not_list_is_refused(results, capsys, monkeypatch):
    from kit import gpus
    monkeypatch.setattr(gpus, "nvml_gpus", lambda: [gpus.Gpu("0", 0, "GPU-00000000-aaaa", "Fake GPU", 0)])
    for extra in ([], ["--dry-run"]):
        code, _, err = run_main(capsys, "run", "1", *run_args(results, double_config(marker="faults-gpu")),
                                "--gpus", "99", *extra)
        assert code == 2 and "no GPU 99 here" in err and "NVML sees 0" in err and "Traceback" not in err
    assert not results.exists()


# -- Slurm: the terminal's Ctrl-C does not reach sbatch --------------------------------------------------

def test_slurm_commands_run_in_their_own_session(tmp_path, monkeypatch):
    from kit.runtimes.slurm import client as slurm
    fake = tmp_path / "sbatch"
    fake.write_text(f"#!{sys.executable}\nimport os\nprint(os.getsid(0))\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    r = slurm.slurm("sbatch", "--parsable", "job.sbatch")
    assert int(r.stdout) != os.getsid(0)      # Ctrl-C goes to kit run's session; kit run stops the jobs


@pytest.mark.parametrize("value, ok", [("90", True), ("1:30", True), ("1:00:00", True), ("2-12", True),
                                       ("2-12:30", True), ("2-12:30:15", True), ("UNLIMITED", True),
                                       ("infinite", True), ("0", True), ("-1", True), ("soon", False),
                                       ("1:00:00:00", False), ("1h", False), ("", False)])
def test_slurm_time_limits_as_sbatch_reads_them(value, ok):
    """The answers of `sbatch --test-only --time=VALUE` (Slurm 22.05)."""
    from kit.runtimes.slurm import client as slurm
    if ok:
        assert slurm.slurm_options({"time_limit": value or None}, {})["time_limit"] == value
    else:
        with pytest.raises(BadInput, match="is not a Slurm time limit"):
            slurm.check_values({"partition": None, "account": None, "time_limit": value, "extra": []})
