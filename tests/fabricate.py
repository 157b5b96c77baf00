"""The one fabricator of synthetic runs for tests (docs/results-layout.md).

    from fabricate import fabricate_run
    run_dir = fabricate_run(tmp_path / "results", tables=(1, 4), repeat=2, arm_opts={"l1": {"scale": 2}})

Each arm's events follow kit.workload.steps (the sequence the workload executes) and are written with
kit.workload.events.Writer, so they pass the reader. The manifest comes from kit.options.RunOptions.
Durations are deterministic: by default the model's time for the event kind x a small per-repeat and
per-round factor (so min/max differ); `times` gives exact durations instead ({"<kind> <model>": [s, ...]}
consumed in sequence order), `scale` multiplies every duration (a list: one factor per repeat).
`cache` gives each load event a breakdown (events schema 3) whose compile_cache is "hit", "miss" or
"unknown" (None); a list: one per load, in sequence order. Without it, loads have no breakdown (older runs).
"""
import copy
import json
from pathlib import Path

from kit import __version__, layout
from kit.manifest import SCHEMA
from kit.options import RunOptions
from kit.plan import units
from kit.workload import scenarios
from kit.workload.events import Writer
from kit.workload.steps import base_arm, steps

# model -> event kind -> seconds; weights MiB per model
MODEL_TIMES = {"A": {"load": 36.0, "warmup": 2.0, "sleep": 0.3, "wake": 0.15, "prompt": 0.6, "stop": 2.0},
               "B": {"load": 58.0, "warmup": 3.5, "sleep": 1.1, "wake": 0.7, "prompt": 1.4, "stop": 2.0}}
WEIGHTS_MIB = {"A": 1150, "B": 7900}
GPU_BASE, GPU_SERVER, GPU_ASLEEP = 520, 24000, 900
RSS_SERVER = 1400
L2_PARTS = {"wake_up": 0.2, "reload_weights": 0.6, "reset_prefix_cache": 0.05, "warmup": 0.15}
ENV = {"python": "3.12.3", "vllm_version": "0.11.0", "torch_version": "2.8.0", "cuda_version": "12.8",
       "driver": "570.00", "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}],
       "h2d_gbps": 25.0}


def _jitter(repeat, rnd, i=0):
    return 1.0 + 0.03 * ((repeat * 7 + rnd * 3 + i) % 5)


class _Arm:
    """Writes one arm repeat's events, keeping GPU MiB and each server's RSS chained."""

    def __init__(self, writer, arm, repeat, times, scale, failed_check, cache=None):
        self.w, self.arm, self.repeat = writer, arm, repeat
        self.cache = list(cache) if isinstance(cache, (list, tuple)) else cache
        self.scale = scale[repeat - 1] if isinstance(scale, (list, tuple)) else scale   # per repeat, or one for all
        self.times, self.failed_check = copy.deepcopy(times), failed_check
        self.t, self.gpu, self.rss, self.slept, self.held = 0.0, GPU_BASE, {}, set(), {}

    def duration(self, step):
        key = f"{step.kind} {step.model}"
        if self.times is not None:
            return self.times[key].pop(0) * self.scale
        d = MODEL_TIMES[step.model][step.kind] * _jitter(self.repeat, step.round, step.kind == "prompt")
        if step.kind == "prompt" and self.arm.quantization:
            d *= 0.9
        if step.kind == "prompt" and not self.arm.warmup and self.arm.sleep_level and step.round == 1:
            d *= 4      # a cold first prompt without warm-up
        if step.kind == "wake" and self.arm.sleep_level == 2:
            d += WEIGHTS_MIB[step.model] / 2500.0
        return d * self.scale

    def write(self, step, ok=True):
        d = round(self.duration(step), 6)
        m, level = step.model, self.arm.sleep_level
        gpu_before, rss_before = self.gpu, self.rss.get(m)
        extra = {}
        if step.kind == "load":
            self.gpu += GPU_SERVER
            self.held[m] = GPU_SERVER
            self.rss[m] = RSS_SERVER
            if self.cache is not None:
                extra = {"breakdown": breakdown(self.cache.pop(0) if isinstance(self.cache, list) else self.cache, d)}
        elif step.kind == "stop":
            self.gpu -= self.held.pop(m)
            self.rss.pop(m, None)
        elif step.kind == "prompt":
            extra = {"ttft_s": round(d / 10, 6), "output_tokens": 100}
        elif step.kind == "warmup":
            extra = {"ttft_s": None, "output_tokens": 1}
        elif step.kind == "sleep":
            first = m not in self.slept
            self.slept.add(m)
            self.gpu -= GPU_SERVER - GPU_ASLEEP
            self.held[m] = GPU_ASLEEP
            grew = (WEIGHTS_MIB[m] + 700 if level == 1 else 10) if first else 0
            self.rss[m] += grew
            backed = WEIGHTS_MIB[m] / 1024 if level == 1 else 0.0
            checks = [{"check": "gpu_dropped", "ok": True, "detail": f"GPU used {gpu_before} -> {self.gpu} MiB"}]
            if first:
                bad = self.failed_check and m == "A"
                checks.append({"check": f"rss_level{level}", "ok": not bad,
                               "detail": f"host RSS +{grew} MiB on first sleep, weights {WEIGHTS_MIB[m]} MiB"})
            checks.append({"check": "engine_log", "ok": True, "detail": f"engine: {backed:.2f} GiB backed up in CPU"})
            extra = {"level": level, "checks": checks}
        elif step.kind == "wake":
            self.gpu += GPU_SERVER - GPU_ASLEEP
            self.held[m] = GPU_SERVER
            parts = ({p: round(d * f, 6) for p, f in L2_PARTS.items()} if level == 2 else {"wake_up": d})
            extra = {"level": level, "parts": parts}
        self.w.write(kind=step.kind, model=m, round=step.round, start_s=round(self.t, 6), duration_s=d, ok=ok,
                     error=None if ok else f"{step.kind} {m} failed (fabricated)", gpu_mib_before=gpu_before,
                     gpu_mib_after=self.gpu, rss_mib_before=rss_before, rss_mib_after=self.rss.get(m), **extra)
        self.t += d + 0.02


def breakdown(cache, seconds):
    """A load's breakdown (the load-breakdown parser's contract): cache "hit", "miss" or "unknown"."""
    compiled = cache == "miss"
    return {"compile_cache": None if cache == "unknown" else cache, "compile_s": round(seconds / 3, 6) if compiled else 0.0,
            "weights_gib": 1.1, "weights_s": round(seconds / 6, 6), "graphs_s": round(seconds / 10, 6),
            "engine_init_s": round(seconds / 2, 6), "first_log_s": 3.0, "cache_key": "0123abcd"}


def write_repeat(run_dir, run_id, unit, repeat=1, *, protocol="corrected", script="", times=None, scale=1.0,
                 fail_at=None, status_ok=True, failed_check=False, env=ENV, status=True, cache=None):
    """One unit repeat folder: events.jsonl, env.json, server logs, workload.log, status.json (unless
    status=False: an interrupted attempt). fail_at: the 1-based step that fails (the arm stops there)."""
    arm = scenarios.ARMS[base_arm(unit)]
    folder = layout.RunDir(run_dir).repeat_dir(unit, repeat)
    folder.mkdir(parents=True, exist_ok=True)
    w = Writer(folder / layout.EVENTS, run=run_id, arm=unit, repeat=repeat)
    writer = _Arm(w, arm, repeat, times, scale, failed_check, cache)
    ok = True
    for n, step in enumerate(steps(arm, protocol, script), 1):
        ok = fail_at is None or n != fail_at
        writer.write(step, ok)
        if not ok:
            break
    error = None if ok else "fabricated failure"
    w.write(kind="total", model=None, round=0, start_s=0.0, duration_s=round(writer.t, 6), ok=ok, error=error)
    w.close()
    (folder / layout.ENV).write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    for model in ("A", "B"):
        (folder / layout.server_log(model)).write_text(
            f"INFO serving model {model}\n" + ("INFO 1.12 GiB is backed up in CPU\n" if arm.sleep_level == 1 else ""))
    (folder / layout.WORKLOAD_LOG).write_text(f"arm {unit} repeat {repeat}: {'ok' if ok else 'FAILED'}\n")
    ok = ok and status_ok
    record = {"arm": unit, "repeat": repeat, "ok": ok, "exit_code": 0 if ok else 1,
              "error": None if ok else (error or "server A never became ready (exit 1)"),
              "seconds": round(writer.t + 5, 2), "host": "fabricated", "ended": "2025-01-01T00:30:00Z"}
    if status:
        (folder / layout.STATUS).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def fabricate_run(results_dir, tables=(1,), repeat=1, run_id=None, complete=True, arm_opts=None, **options):
    """results_dir/<run_id>/ for the given tables, every unit x repeat written (arm_opts: {unit: keyword
    arguments of write_repeat}, e.g. {"l2": {"fail_at": 3}}; a unit whose options hold skip=True is not
    written at all). **options: RunOptions fields (protocol, fixed_output, ...). Returns the run folder."""
    opts = RunOptions(tables=tuple(tables), repeat=repeat, runtime="local", **options)
    run_id = run_id or f"20250101-000000-t{''.join(map(str, tables))}"
    run_dir = Path(results_dir) / run_id
    run_dir.mkdir(parents=True)
    jobs = []
    for unit in units(opts):
        extra = dict((arm_opts or {}).get(unit.name, {}))
        if extra.pop("skip", False):
            continue
        for k in range(1, repeat + 1):
            status = write_repeat(run_dir, run_id, unit.name, k, protocol=opts.protocol, script=unit.script, **extra)
            jobs.append(dict(status, unit=unit.name, lane="gpu 0", started="2025-01-01T00:00:00Z"))
    manifest = {"run_id": run_id, "kit_version": __version__, "git_commit": "0" * 40,
                "command": ["kit", "run", *map(str, tables)], "created": "2025-01-01T00:00:00Z",
                "ended": "2025-01-01T01:00:00Z" if complete else None, "complete": complete,
                "runtime": {"name": "local"}, "options": opts.to_manifest(), "units": [u.name for u in units(opts)],
                "models": {"A": {"name": opts.model_a, "path": None, "sha256": None},
                           "B": {"name": opts.model_b, "path": None, "sha256": None}},
                "server_args": {u.name: scenarios.ARMS[u.arm].server_args() for u in units(opts)},
                "server_env": dict(scenarios.SERVER_ENV), "environment": ENV, "h2d": {"gpu 0": ENV["h2d_gbps"]},
                "jobs": jobs, "resumes": []}
    layout.write_json(layout.RunDir(run_dir).manifest_path, dict(manifest, schema=SCHEMA))
    return run_dir
