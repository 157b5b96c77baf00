"""Fabricate a whole synthetic run directory (docs/results-layout.md) for tests.

    from fabricate import fabricate_run
    run_dir = fabricate_run(tmp_path / "results", tables=(1, 4), repeat=2)

Events follow DESIGN.md's arm sequences and are written with kit.events.Writer, so they pass
kit.events.read. Numbers are deterministic (no randomness): roughly the study's H100 magnitudes,
with a small per-repeat/per-round variation so min/max differ.
"""
import json
from pathlib import Path

from kit import __version__, scenarios
from kit.events import Writer

RUN_ID = "20250101-000000-t1"

# model -> (load s, warm-up s, sleep s, wake s, prompt s, weights MiB)
MODEL_TIMES = {"A": (36.0, 2.0, 0.3, 0.15, 0.6, 1150), "B": (58.0, 3.5, 1.1, 0.7, 1.4, 7900)}
GPU_BASE, GPU_SERVER, RSS_SERVER = 520, 24000, 1400
ENV = {"python": "3.12.3", "vllm_version": "0.11.0", "torch_version": "2.8.0", "cuda_version": "12.8",
       "driver": "570.00", "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}], "h2d_gbps": 25.0}


class _Clock:
    """Hands out start offsets; tracks GPU MiB and per-model RSS so before/after chain up."""

    def __init__(self):
        self.t = 0.0
        self.gpu = GPU_BASE
        self.rss = {"A": 0, "B": 0}


def _jitter(repeat, rnd, i=0):
    return 1.0 + 0.03 * ((repeat * 7 + rnd * 3 + i) % 5)


def _event(w, clock, kind, model, rnd, duration, gpu_delta=0, rss_to=None, ok=True, error=None, **extra):
    rss_before = clock.rss[model] if model else 0
    gpu_before = clock.gpu
    clock.gpu += gpu_delta
    if model and rss_to is not None:
        clock.rss[model] = rss_to
    record = w.write(kind=kind, model=model, round=rnd, start_s=round(clock.t, 4),
                     duration_s=round(duration, 4), ok=ok, error=error,
                     gpu_mib_before=gpu_before, gpu_mib_after=clock.gpu,
                     rss_mib_before=rss_before, rss_mib_after=clock.rss[model] if model else 0, **extra)
    clock.t += duration + 0.02
    return record


def _sleep_arm_events(w, clock, arm, repeat, fail_at):
    level = arm.sleep_level
    n = 0
    def go(kind, model, rnd, duration, **kw):
        nonlocal n
        n += 1
        if fail_at is not None and n == fail_at:
            _event(w, clock, kind, model, rnd, duration, ok=False, error=f"{kind} {model} failed (fabricated)")
            return False
        _event(w, clock, kind, model, rnd, duration, **kw)
        return True

    def sleep(model, rnd, first):
        weights = MODEL_TIMES[model][5]
        grow = (weights + 700 if level == 1 else 10) if first else 0
        checks = [{"check": "gpu_dropped", "ok": True, "detail": "fabricated"}]
        return go("sleep", model, rnd, MODEL_TIMES[model][2] * _jitter(repeat, rnd), level=level,
                  gpu_delta=-(GPU_SERVER - 900), rss_to=clock.rss[model] + grow, checks=checks)

    def wake(model, rnd):
        base = MODEL_TIMES[model][3] * _jitter(repeat, rnd)
        parts = None
        if level == 2:
            base += MODEL_TIMES[model][5] / 2500.0
            parts = {"wake_up": round(base * 0.2, 4), "reload_weights": round(base * 0.7, 4),
                     "reset_prefix_cache": round(base * 0.02, 4), "warmup": round(base * 0.08, 4)}
        return go("wake", model, rnd, base, level=level, parts=parts, gpu_delta=GPU_SERVER - 900,
                  rss_to=clock.rss[model])

    for model in ("A", "B"):
        load, warm = MODEL_TIMES[model][:2]
        if not go("load", model, 0, load * _jitter(repeat, 0), gpu_delta=GPU_SERVER, rss_to=RSS_SERVER):
            return False
        if arm.warmup and not go("warmup", model, 0, warm * _jitter(repeat, 0), rss_to=RSS_SERVER,
                                 output_tokens=1, ttft_s=0.05):
            return False
        if not sleep(model, 0, True):
            return False
    for rnd in range(1, scenarios.ROUNDS + 1):
        for model in ("A", "B"):
            prompt = MODEL_TIMES[model][4] * _jitter(repeat, rnd, 1)
            if arm.quantization:
                prompt *= 0.9
            if not arm.warmup and rnd == 1:
                prompt *= 4  # cold first prompt without warm-up
            last = rnd == scenarios.ROUNDS and model == "B"   # the workload skips the very last sleep
            if not (wake(model, rnd)
                    and go("prompt", model, rnd, prompt, rss_to=clock.rss[model], ttft_s=round(prompt / 10, 4),
                           output_tokens=100)
                    and (last or sleep(model, rnd, False))):
                return False
    for model in ("A", "B"):
        gpu_drop = -(GPU_SERVER if model == "B" else 900)
        if not go("stop", model, scenarios.ROUNDS, 2.0, gpu_delta=gpu_drop, rss_to=0):
            return False
    return True


def _nosleep_arm_events(w, clock, arm, repeat, fail_at):
    n = 0
    for rnd in range(1, scenarios.ROUNDS + 1):
        for model in ("A", "B"):
            load, _, _, _, prompt, _ = MODEL_TIMES[model]
            steps = [("load", load * _jitter(repeat, rnd), GPU_SERVER, RSS_SERVER, {}),
                     ("prompt", prompt * _jitter(repeat, rnd, 1), 0, RSS_SERVER,
                      {"ttft_s": round(prompt / 10, 4), "output_tokens": 100}),
                     ("stop", 2.5, -GPU_SERVER, 0, {})]
            for kind, duration, gpu_delta, rss_to, extra in steps:
                n += 1
                if fail_at is not None and n == fail_at:
                    _event(w, clock, kind, model, rnd, duration, ok=False, error=f"{kind} {model} failed (fabricated)")
                    return False
                _event(w, clock, kind, model, rnd, duration, gpu_delta, rss_to, **extra)
    return True


def write_arm(run_dir, run_id, arm_name, repeat, fail_at=None):
    """One arm repeat folder: events.jsonl, env.json, logs, status.json. fail_at: 1-based event
    number that fails (the arm stops there). Returns the status dict."""
    arm = scenarios.ARMS[arm_name]
    folder = Path(run_dir) / arm_name / f"r{repeat}"
    folder.mkdir(parents=True, exist_ok=True)
    w = Writer(folder / "events.jsonl", run=run_id, arm=arm_name, repeat=repeat)
    clock = _Clock()
    events = _sleep_arm_events if arm.sleep_level else _nosleep_arm_events
    ok = events(w, clock, arm, repeat, fail_at)
    error = None if ok else "fabricated failure"
    w.write(kind="total", model=None, round=0, start_s=0.0, duration_s=round(clock.t, 4), ok=ok, error=error)
    w.close()
    (folder / "env.json").write_text(json.dumps(ENV, indent=2, sort_keys=True) + "\n")
    for model in ("A", "B"):
        (folder / f"server-{model}.log").write_text(
            f"INFO serving {scenarios.MODEL_A if model == 'A' else scenarios.MODEL_B}\n"
            + ("INFO 1.12 GiB is backed up in CPU\n" if arm.sleep_level == 1 else ""))
    (folder / "workload.log").write_text(f"arm {arm_name} repeat {repeat}: {'ok' if ok else 'FAILED'}\n")
    status = {"arm": arm_name, "repeat": repeat, "ok": ok, "exit_code": 0 if ok else 1, "error": error,
              "seconds": round(clock.t + 5, 2), "host": "fabricated", "ended": "2025-01-01T00:30:00Z"}
    (folder / "status.json").write_text(json.dumps(status, indent=1, sort_keys=True) + "\n")
    return status


def manifest_for(run_id, tables, arms, repeat, statuses, complete):
    return {
        "run_id": run_id, "kit_version": __version__, "git_commit": "0" * 40,
        "command": ["kit", "run", "--tables", ",".join(map(str, tables))],
        "created": "2025-01-01T00:00:00Z", "ended": "2025-01-01T01:00:00Z" if complete else None,
        "complete": complete,
        "runtime": {"name": "local"},
        "options": {"tables": list(tables), "arms": list(arms), "repeat": repeat, "protocol": "corrected",
                    "fixed_output": False, "cache": "empty", "server_cmd": None, "ready_timeout": 900.0,
                    "call_timeout": 300.0},
        "models": {"A": {"name": scenarios.MODEL_A, "path": None, "sha256": None},
                   "B": {"name": scenarios.MODEL_B, "path": None, "sha256": None}},
        "server_args": {a: scenarios.ARMS[a].server_args() for a in arms},
        "server_env": dict(scenarios.SERVER_ENV),
        "environment": ENV,
        "arms": {a: [dict(s, environment_note=None) for s in statuses if s["arm"] == a] for a in arms},
    }


def fabricate_run(results_dir, tables=(1,), repeat=1, run_id=None, fail=None, complete=True):
    """Write results_dir/<run_id>/ for the given tables. fail: {arm: event number that fails}
    (applies to every repeat of that arm; 1 = the arm dies on its first event).
    Returns the run directory (a Path). Tables/figures are not rendered."""
    fail = fail or {}
    run_id = run_id or f"20250101-000000-t{''.join(map(str, tables))}"
    run_dir = Path(results_dir) / run_id
    run_dir.mkdir(parents=True)
    arms = scenarios.arms_for(tables)
    statuses = [write_arm(run_dir, run_id, a, k, fail.get(a)) for a in arms for k in range(1, repeat + 1)]
    manifest = manifest_for(run_id, tables, arms, repeat, statuses, complete)
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return run_dir
