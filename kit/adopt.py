"""`kit adopt RUN_DIR`: make a folder of arm repeats written without `kit run` a run the kit reads.

compose.yaml writes results/<run-id>/<arm>/r1/ (events.jsonl, env.json, server logs), and so
does `python3 -m kit.workload --arm ARM --run-id RUN_ID --out results/RUN_ID/ARM/r<k>` by hand. Adopting
writes what the host side of `kit run` would have: each repeat's status.json (from its events) and
manifest.json (runtime "compose", "adopted": true). Everything is read and checked before anything is written.
"""
import os
import shlex
from pathlib import Path

from kit import hints, layout, manifest, plan
from kit.errors import BadInput, BadRecord, NotFound
from kit.options import RunOptions
from kit.workload import events as ev
from kit.workload import scenarios
from kit.workload.steps import base_arm, unit_name

LANE = "compose"


def adopt(path, tables=(), model_a=None, model_b=None, command=None):
    """Write the status.json files and manifest.json of the run folder `path`; returns the manifest
    (kit.manifest.Manifest)."""
    run_dir = layout.RunDir(Path(path).resolve())
    if not run_dir.path.is_dir():
        raise NotFound(f"{path} is not a folder", "give the folder compose wrote, e.g. results/compose")
    if run_dir.exists():
        raise BadInput(f"{path} has a manifest.json: it is a run already",
                       f"read it with `kit table {run_dir.run_id}`; put more arms in a new run id (SLEEPKIT_RUN_ID)")
    layout.check_run_id(run_dir.run_id)
    found = [(unit, k, folder) for unit in run_dir.units_on_disk() for k, folder in sorted(run_dir.repeat_dirs(unit).items())]
    if not found:
        raise NotFound(f"no <arm>/r<k>/ folders in {path}", "give the folder compose wrote, e.g. results/compose")
    repeats = [(unit, k, folder, read_events(folder, run_dir.run_id, unit, k), layout.read_json(folder / layout.ENV))
               for unit, k, folder in found]

    units = {unit for unit, *_ in repeats}
    protocol = "seed" if any("@" in u for u in units) else "corrected"
    tables = list(tables) or [n for n, t in scenarios.TABLES.items()
                              if all(unit_name(a, protocol, t.script) in units for a in t.arms)]
    if not tables:
        raise BadInput(f"no table has both its arms in {path} (found {', '.join(sorted(units))})",
                       "run the other arm too (e.g. `docker compose run --rm nosleep`), or name the tables with --tables")
    folders = [folder for _, _, folder, _, _ in repeats]
    options = RunOptions(tables=tuple(tables), repeat=max(k for _, k, *_ in repeats), runtime="compose",
                         protocol=protocol, model_a=model_a or logged_model(folders, "A", path),
                         model_b=model_b or logged_model(folders, "B", path)).check()

    blocked = next((f for f in [run_dir.path, *folders] if not os.access(f, os.W_OK)), None)
    if blocked:
        raise BadInput(f"{blocked} is not writable (a container wrote it as root?)",
                       f"make it yours (sudo chown -R $(id -u) {shlex.quote(str(path))}) and adopt again")
    record = manifest.new(run_dir.run_id, options, plan.units(options), command or ["kit", "adopt", str(path)])
    statuses = [(folder, *status_of(unit, k, events, (folder / layout.EVENTS).stat().st_mtime))
                for unit, k, folder, events, _ in repeats]
    envs = [env for *_, env in repeats if env]
    h2d = next((e["h2d_gbps"] for e in envs if e.get("h2d_gbps") is not None), None)
    record.update(environment=envs[0] if envs else None, h2d={LANE: h2d} if h2d else {}, complete=True,
                  ended=record.created, adopted=True, adopted_at=record.created,
                  jobs=[dict(status, unit=status["arm"], lane=LANE, gpu=None, started=started)
                        for _, status, started in statuses])
    for folder, status, _ in statuses:
        layout.write_json(folder / layout.STATUS, status)
    manifest.write(run_dir, record)
    return record


def summary(path, record):
    """What was adopted, and the commands that read it now."""
    rid, jobs = record.run_id, record.jobs
    parent = Path(path).resolve().parent
    rel = os.path.relpath(parent)
    parent = rel if not rel.startswith("..") else str(parent)
    where = hints.results_flag(parent)
    return (f"adopted {path} as run {rid}: tables {', '.join(map(str, record.options.tables))}; "
            f"{len(jobs)} repeat(s), {sum(not j['ok'] for j in jobs)} failed\n"
            f"next: kit table {rid}{where}; kit plot {rid}{where}; kit bundle {rid}{where}")


def read_events(folder, run_id, unit, k):
    """The events of one repeat, checked to belong to this folder's run, unit and repeat."""
    path = folder / layout.EVENTS
    if base_arm(unit) not in scenarios.ARMS:
        raise BadRecord(f"{folder}: {unit!r} is not an arm ({', '.join(scenarios.ARMS)})", "move that folder out")
    if not path.is_file():
        raise NotFound(f"{path}: no events (the workload never started there)", "run the arm again or remove that folder")
    try:
        events = ev.read(path)
    except (ev.SchemaError, OSError, UnicodeDecodeError) as e:
        raise BadRecord(f"malformed events: {e}", "fix or remove that repeat folder, then adopt again") from None
    for e in events:
        if e["run"] != run_id:
            raise BadRecord(f"{path}: events of run {e['run']!r}, not {run_id!r} (the folder's name)",
                            f"rename the folder to {e['run']}, or run the arm again with SLEEPKIT_RUN_ID={run_id}")
        if (e["arm"], e["repeat"]) != (unit, k):
            raise BadRecord(f"{path}: events of {e['arm']} r{e['repeat']}, not {unit} r{k}",
                            f"move the folder to {e['arm']}/r{e['repeat']}")
    if sum(e["kind"] == "total" for e in events) > 1:
        raise BadRecord(f"{path}: holds more than one run of the arm (written twice into the same folder)",
                        "keep one run's lines, or move the folder away and run the arm again")
    return events


def status_of(unit, k, events, mtime):
    """(status.json as `kit run` writes it, the start time): ok, error and seconds of the total event; the
    events file's modification time is when the repeat ended."""
    total = next((e for e in events if e["kind"] == "total"), None)
    ok = bool(total and total["ok"])
    if total is None:
        error = "the workload stopped before it ended (no total event)"
    else:
        error = None if ok else total["error"] or "the arm failed; see its server logs"
    seconds = round(total["duration_s"] if total else max((e["start_s"] + e["duration_s"] for e in events), default=0), 3)
    return {"arm": unit, "repeat": k, "ok": ok, "exit_code": 0 if ok else (1 if total else None), "error": error,
            "seconds": seconds, "host": None, "ended": layout.now(mtime)}, layout.now(mtime - seconds)


def logged_model(folders, label, path):
    """The --model the workload started server `label` with, from the marker lines of its server logs."""
    prefix = f"=== sleepkit: starting server {label}: "
    found = set()
    for folder in folders:
        log = folder / layout.server_log(label)
        if not log.is_file():
            continue
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(prefix):
                    try:
                        argv = shlex.split(line[len(prefix):])
                    except ValueError:
                        continue
                    if "--model" in argv[:-1]:
                        found.add(argv[argv.index("--model") + 1])
    option = f"--model-{label.lower()}"
    if len(found) > 1:
        raise BadRecord(f"the server-{label}.log files in {path} name different models ({', '.join(sorted(found))})",
                        f"adopt each model's repeats in a folder of its own, or name the model with {option}")
    if not found:
        raise BadInput(f"no server-{label}.log in {path} says which model {label} was", f"name it with {option}")
    return found.pop()


