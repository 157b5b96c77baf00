"""Reading a run: its manifest, options and, per unit (an arm or a seed-protocol variant of one) and
repeat, the events, status and environment. Everything above this reads runs through load_run.
Unreadable files raise kit.errors.BadRecord naming the file (and line, for events).
"""
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kit import layout, manifest
from kit.errors import BadRecord
from kit.options import RunOptions
from kit.results.loads import backfill
from kit.workload import events as ev
from kit.workload import scenarios
from kit.workload.steps import unit_name


@dataclass
class Repeat:
    repeat: int
    events: list
    status: dict | None
    env: dict
    error: str | None = None     # None: this repeat is usable
    pending: bool = False        # planned but not run yet (an interrupted run)

    @property
    def ok(self):
        return self.error is None


@dataclass
class Run:
    source: Path                 # the run directory or the bundle it was read from
    manifest: dict               # as the file holds it (kit/manifest.py checked it; kit 0.1.0's: schema 1)
    options: RunOptions
    units: dict = field(default_factory=dict)     # unit -> [Repeat], by repeat index

    @property
    def run_id(self):
        return self.manifest.get("run_id") or Path(self.source).name

    @property
    def tables(self):
        """The tables the run was made for (as `kit run` wrote them), else those whose arms it has."""
        if self.options.tables or self.options.arms:
            return self.options.table_numbers()
        return [n for n in scenarios.TABLES if all(self.unit_for(n, a) in self.units for a in scenarios.TABLES[n].arms)]

    def unit_for(self, number, arm):
        """The unit that serves `arm` in table `number` (its seed variant for that table's script)."""
        if self.manifest.get("schema", 1) < 2 and self.options.protocol == "seed" and arm == "l2":
            # kit 0.1.0 named units by arm, and its seed l2 replayed Table 5's script in every table
            return "l2" if number == 5 else "l2@" + scenarios.TABLES[number].script.removesuffix(".py")
        return unit_name(arm, self.options.protocol, scenarios.TABLES[number].script)

    @cached_property
    def h2d(self):
        """{device (kit.manifest.device_key): host->GPU GB/s measured there}, older manifests' migrated."""
        return manifest.h2d_by_device(self.manifest)

    def h2d_gbps(self, unit, rep):
        """The host->GPU bandwidth of the device this repeat ran on: its own measurement, else the one the run
        made on that device (h2d), else None: never another device's. A run that recorded no jobs (kit
        0.1.0, one GPU) has its single measurement."""
        if rep.env.get("h2d_gbps") is not None:
            return rep.env["h2d_gbps"]
        jobs = self.manifest.get("jobs") or []
        if not jobs:
            return (self.manifest.get("environment") or {}).get("h2d_gbps")
        job = next((j for j in jobs if j.get("unit") == unit and j.get("repeat") == rep.repeat), None)
        return self.h2d.get(manifest.device_key(job)) if job else None


def load_run(run_dir):
    run_dir = layout.RunDir(run_dir)
    data = manifest.read_dict(run_dir)
    record = manifest.Manifest.from_dict(data, run_dir.manifest_path)
    run = Run(run_dir.path, data, record.options)
    for unit in dict.fromkeys([*record.units, *run_dir.units_on_disk()]):
        found = run_dir.repeat_dirs(unit)
        open_run = record.complete is not True
        reps = [_load_repeat(found[k], k, open_run) for k in sorted(found)]
        reps += [Repeat(k, [], None, {}, "not run yet" if open_run else f"no results (r{k} missing)", pending=open_run)
                 for k in range(1, record.options.repeat + 1) if k not in found]
        run.units[unit] = sorted(reps, key=lambda r: r.repeat)
    return run


def _load_repeat(folder, k, open_run=False):
    """open_run: the run is not complete, so a repeat that left no status.json was cut off (the machine went,
    kill -9) and a resume runs it again: pending, not failed."""
    status = layout.read_json(folder / layout.STATUS)
    path = folder / layout.EVENTS
    try:
        events = ev.read(path) if path.exists() else None
    except ev.SchemaError as e:
        raise BadRecord(f"malformed events: {e}", "the run's events.jsonl is damaged") from None
    error = _repeat_error(status, events)
    pending = open_run and status is None and error is not None
    if pending:
        error = "cut off: the job left no status.json (a resume runs it again)"
    return Repeat(k, backfill(events or [], folder), status, layout.read_json(folder / layout.ENV) or {}, error,
                  pending=pending)


def _repeat_error(status, events):
    if status is not None and not status.get("ok"):
        return status.get("error") or f"exit code {status.get('exit_code')}"
    if events is None:
        return "no events.jsonl"
    mixed = mixed_workloads(events)
    if mixed:
        return mixed
    bad = next((e for e in events if not e["ok"]), None)
    if bad:
        return f"{bad['kind']} {bad['model'] or '-'} round {bad['round']}: {bad['error']}"
    if status is None and not any(e["kind"] == "total" for e in events):
        return "unfinished: no status.json and no total event"
    return None


def mixed_workloads(events):
    """Why one events file holds more than one workload's events (two `kit run`s wrote into one folder),
    or None: a seq number twice, or a second total."""
    seen, totals = set(), 0
    for e in events:
        if e["seq"] in seen:
            return f"events of two workloads in one file (seq {e['seq']} twice)"
        seen.add(e["seq"])
        totals += e["kind"] == "total"
        if totals > 1:
            return f"events of two workloads in one file (a second total event, seq {e['seq']})"
    return None
