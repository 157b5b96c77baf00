"""`kit run`: the plan (arms x repeats), the run directory and manifest, and the loop over arms."""
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from kit import __version__, scenarios
from kit.runtimes import ArmJob

KIT_ROOT = Path(__file__).resolve().parents[1]


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(results_dir, tables):
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-t{''.join(str(t) for t in sorted(tables))}"
    run_id, n = base, 1
    while (Path(results_dir) / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def workload_args(opts, arm, repeat, run_id, measure_h2d):
    args = ["--arm", arm, "--run-id", run_id, "--repeat-index", str(repeat),
            "--model-a", opts["model_a"], "--model-b", opts["model_b"],
            "--server-cmd", opts["server_cmd"], "--protocol", opts["protocol"],
            "--ready-timeout", str(opts["ready_timeout"]), "--call-timeout", str(opts["call_timeout"])]
    if opts["fixed_output"]:
        args.append("--fixed-output")
    if measure_h2d:
        args.append("--measure-h2d")
    return args


def server_commands(opts, arm):
    """The exact server command lines of an arm (port chosen at run time), for --dry-run and the manifest."""
    a = scenarios.ARMS[arm]
    return {m: shlex.split(opts["server_cmd"]) + ["--model", opts[f"model_{m.lower()}"], "--host", "127.0.0.1",
                                                  "--port", "<free port>"] + a.server_args()
            for m in ("A", "B")}


def git_commit():
    """The kit's commit; SLEEPKIT_GIT_COMMIT names it for a copy without .git (e.g. carried offline)."""
    if os.environ.get("SLEEPKIT_GIT_COMMIT"):
        return os.environ["SLEEPKIT_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(KIT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(KIT_ROOT), "status", "--porcelain", "--", "kit"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def model_info(name):
    """Name, local path and a content checksum (a twin's own digest when it has one)."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return {"name": name, "path": None, "sha256": None}
    twin = path / "sleepkit-twin.json"
    if twin.exists():
        info = json.loads(twin.read_text())
        return {"name": name, "path": str(path.resolve()), "sha256": info.get("digest"), "twin": info.get("name")}
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return {"name": name, "path": str(path.resolve()), "sha256": digest.hexdigest()}


def new_manifest(run_id, opts, arms, runtime):
    return {
        "run_id": run_id, "kit_version": __version__, "git_commit": git_commit(),
        "command": ["kit"] + sys.argv[1:], "created": now(), "ended": None, "complete": False,
        "runtime": runtime.describe(),
        "options": {k: opts[k] for k in ("tables", "repeat", "protocol", "fixed_output", "cache",
                                         "server_cmd", "ready_timeout", "call_timeout")} | {"arms": arms},
        "models": {"A": model_info(opts["model_a"]), "B": model_info(opts["model_b"])},
        "server_args": {arm: scenarios.ARMS[arm].server_args() for arm in arms},
        "server_env": scenarios.SERVER_ENV,
        "environment": None,
        "arms": {arm: [] for arm in arms},
    }


def write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def arm_done(run_dir, arm, repeat):
    status = Path(run_dir) / arm / f"r{repeat}" / "status.json"
    return status.exists() and json.loads(status.read_text()).get("ok") is True


def tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_arms(run_dir, manifest, opts, runtime, say):
    """Every arm x repeat not yet done, in order. Returns the number of failed arm repeats."""
    plan = [(arm, k) for arm in manifest["options"]["arms"] for k in range(1, opts["repeat"] + 1)]
    failed = 0
    for i, (arm, k) in enumerate(plan, 1):
        tag = f"[{arm} {i}/{len(plan)}]"
        if arm_done(run_dir, arm, k):
            say(f"{tag} repeat {k}: already complete, skipped")
            continue
        out = Path(run_dir) / arm / f"r{k}"
        if out.exists():   # an interrupted attempt: start this arm repeat afresh
            for f in out.iterdir():
                f.unlink()
        say(f"{tag} repeat {k}: {scenarios.ARMS[arm].title}")
        job = ArmJob(run_id=manifest["run_id"], arm=arm, repeat=k,
                     workload_args=workload_args(opts, arm, k, manifest["run_id"],
                                                 measure_h2d=manifest["environment"] is None),
                     model_paths=[m["path"] for m in manifest["models"].values() if m["path"]])
        t0 = time.monotonic()
        code = runtime.run_arm(job, out, lambda line: say(f"{tag} {line}"))
        status = {"arm": arm, "repeat": k, "ok": code == 0, "exit_code": code, "seconds": round(time.monotonic() - t0, 3),
                  "host": socket.gethostname(), "ended": now(),
                  "error": None if code == 0 else last_error(out)}
        write_json(out / "status.json", status)
        record_arm(run_dir, manifest, out, status)
        if code != 0:
            failed += 1
            say(f"{tag} FAILED (exit {code}): {status['error']}\n{tail(out / 'workload.log')}")
    return failed


def last_error(out):
    for line in reversed(tail(out / "workload.log", 200).splitlines()):
        if "arm failed:" in line:
            return line.split("arm failed:", 1)[1].strip()
    return "the workload exited without saying why; see workload.log"


def record_arm(run_dir, manifest, out, status):
    env_file = out / "env.json"
    env = json.loads(env_file.read_text()) if env_file.exists() else None
    if manifest["environment"] is None and env is not None:
        manifest["environment"] = env
    entry = dict(status, environment_note=None)
    if env and manifest["environment"] and env.get("gpus") != manifest["environment"].get("gpus"):
        entry["environment_note"] = "ran on other GPUs than the first arm: see its env.json"
    manifest["arms"][status["arm"]] = [e for e in manifest["arms"][status["arm"]]
                                       if e["repeat"] != status["repeat"]] + [entry]
    write_json(Path(run_dir) / "manifest.json", manifest)
