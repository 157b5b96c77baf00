"""Finding runs: the runs of a results dir (list_runs), the one a command names (pick_run), `kit ls` (one line
per run) and `kit show RUN` (one run's summary and files). Both fit WIDTH columns unless asked for everything
(wide=True)."""
import os
from pathlib import Path

from tabulate import tabulate

from kit import layout, manifest
from kit.errors import BadRecord, KitError, NotFound
from kit.results.load import Run
from kit.results.render import wrap
from kit.workload import scenarios

WIDTH = 80
NARROW_DROPS = ("runtime", "created")       # what the narrow listing leaves out first when it must


def list_runs(results_dir):
    """[(RunDir, manifest or the BadRecord that reading it raised)] of every run in a results dir."""
    found = []
    for p in sorted(layout.results_root(results_dir).iterdir()):
        run = layout.RunDir(p)
        if p.name == layout.REFERENCE or not run.exists():
            continue
        try:
            found.append((run, manifest.read_dict(run)))
        except BadRecord as e:
            found.append((run, e))
    return found


def pick_run(results_dir, run_id=None, say=None):
    """The named run (a run id, or a run folder's path), or the latest readable one (damaged runs are passed
    over, not fatal). A run id not in results_dir, or the latest run when results_dir has none, is looked
    for in its reference/ folder (the committed reference runs); say(line) is told which run was picked then."""
    if run_id and ("/" in run_id or os.sep in run_id):
        run = layout.RunDir(run_id)
        if not run.exists():
            raise NotFound(f"{run_id!r} is not a run id nor a run folder (no {layout.MANIFEST} there)",
                           "list the runs with `kit ls`")
        return run
    if run_id:
        for fallback, root in enumerate((layout.results_root(results_dir), Path(results_dir) / layout.REFERENCE)):
            run = layout.RunDir(root / layout.check_run_id(run_id))
            if run.exists():
                if fallback and say:
                    say(f"{run_id}: not in {results_dir}, using the reference run {run.path}")
                return run
        raise NotFound(f"no run {run_id!r} in {results_dir} (nor in {Path(results_dir) / layout.REFERENCE})",
                       "list the runs with `kit ls`")
    good = _readable(results_dir)
    reference = Path(results_dir) / layout.REFERENCE
    if not good and reference.is_dir():
        good = _readable(reference)
        if good and say:
            say(f"no runs in {results_dir}: using the latest reference run, {max(good)[2].path}")
    if not good:
        raise NotFound(f"no runs in {results_dir}", "start one with `kit run 1`")
    return max(good)[2]


def _readable(results_dir):
    """[(created, run id, RunDir)] of the runs whose manifest reads (the latest is the max)."""
    return [(m.get("created") or "", run.run_id, run) for run, m in list_runs(results_dir) if isinstance(m, dict)]


def _state(m):
    jobs = m.get("jobs") or []
    failed = sum(1 for j in jobs if not j.get("ok"))
    if m.get("complete") is not True:
        return "incomplete" + (" (interrupted)" if m.get("interrupted") else "")
    return f"complete, {failed} failed job(s)" if failed else "complete"


def _gpu(m):
    if m.get("stand_in"):
        return m["stand_in"]
    env = m.get("environment") or {}
    names = sorted({g.get("name") for g in env.get("gpus") or [] if isinstance(g, dict) and g.get("name")})
    return ", ".join(names) or "-"


def _short_gpu(name):
    """'NVIDIA H100 80GB HBM3' -> 'H100'; a stand-in server -> 'test double'."""
    if name.startswith("test double"):
        return "test double"
    words = name.removeprefix("NVIDIA ").split() or [name]
    return " ".join(words[:3]) if words[0] in ("GeForce", "RTX", "Tesla", "Quadro") else words[0]


def tables_with_data(run_dir, data):
    """The run's tables (table order) with at least one arm on disk: a table whose two arms are both
    'not run' is left out."""
    try:
        run = Run(run_dir.path, data, manifest.Manifest.from_dict(data).options)
    except (KitError, TypeError, ValueError):
        return []
    present = set(run_dir.units_on_disk())
    return [n for n in sorted(run.tables) if any(run.unit_for(n, a) in present for a in scenarios.TABLES[n].arms)]


def table_list(numbers):
    """[1, 2, 3, 5] -> '1-3,5'."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        start = n if start is None else start
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(n) if n == start else f"{start}{'-' if n > start + 1 else ','}{n}")
            start = None
    return ",".join(parts) or "-"


def listing(results_dir):
    """[{run, created, tables, GPU, runtime, state}] of every run, oldest first; damaged runs say so."""
    rows = []
    for run, m in list_runs(results_dir):
        if isinstance(m, BadRecord):
            rows.append(dict(run=run.run_id, created="?", tables="?", GPU="?", runtime="?",
                             state=f"damaged: {m.message}"))
            continue
        rows.append(dict(run=run.run_id, created=(m.get("created") or "?").replace("T", " ").rstrip("Z"),
                         tables=table_list(tables_with_data(run, m)) or ("guide" if m.get("sweep") else "-"),
                         GPU=_gpu(m), runtime=(m.get("runtime") or {}).get("name", "?"), state=_state(m)))
    return sorted(rows, key=lambda r: (r["created"], r["run"]))


def listing_text(rows, wide=False, width=WIDTH):
    """Every column (wide), or what fits width: the date without the time, the GPU's short name, and
    the runtime and the date left out in that order while the lines are still too long."""
    if wide:
        return tabulate([list(r.values()) for r in rows], ["run", "created (UTC)", "tables", "GPU", "runtime", "state"],
                        tablefmt="simple", disable_numparse=True)
    rows = [dict(r, created=r["created"][:10], GPU=_short_gpu(r["GPU"])) for r in rows]
    columns = ["run", "created", "tables", "GPU", "runtime", "state"]
    text = ""
    for drop in (None,) + NARROW_DROPS:
        columns = [c for c in columns if c != drop]
        text = tabulate([[r[c] for c in columns] for r in rows], columns, tablefmt="simple", disable_numparse=True)
        if max(map(len, text.splitlines())) <= width:
            break
    return text


def ls_text(results_dir, wide=False, say=None):
    """`kit ls`: listing_text of the runs in results_dir; when it has none, of the committed reference runs in
    its reference/ folder, and say(line) is told so. NotFound when neither has a run."""
    rows = listing(results_dir)
    reference = Path(results_dir) / layout.REFERENCE
    if not rows and reference.is_dir() and listing(reference):
        if say:
            say(f"no runs in {results_dir} yet; the committed reference runs in {reference}:")
        rows = listing(reference)
    if not rows:
        raise NotFound(f"no runs in {results_dir}", empty_hint(results_dir))
    return listing_text(rows, wide)


def empty_hint(results_dir):
    reference = Path(results_dir) / layout.REFERENCE
    hint = "start one with `kit run 1`"
    if reference.is_dir():
        hint += f"; committed reference runs: `kit ls --results-dir {reference}`"
    return hint


def _clock(stamp):
    """'2026-11-29T23:08:32.232Z' -> '23:08:32' (the date is on the created line)."""
    return (stamp or "?")[11:19] or "?"


def show_text(run_dir, wide=False, width=WIDTH):
    """One run: what ran, where, how it ended, where its files are; wrapped to width unless wide."""
    m = manifest.read_dict(run_dir)
    options = m.get("options") or {}
    runtime = m.get("runtime") or {}
    env = m.get("environment") or {}
    lines = [f"run {run_dir.run_id}: {_state(m)}"] + ([f"  {m['stand_in']}: not a result"] if m.get("stand_in") else [])
    lines += [
             f"  created {m.get('created')}, ended {m.get('ended') or '-'}; kit {m.get('kit_version')} "
             f"(commit {(m.get('git_commit') or '?')[:12]})",
             f"  command: {' '.join(m.get('command') or [])}",
             f"  tables {options.get('tables')}; repeat {options.get('repeat')}; protocol {options.get('protocol')}; "
             f"cache {options.get('cache')}; fixed output {options.get('fixed_output')}",
             (f"  sweep of {', '.join(x['name'] for x in m['sweep']['models'])} at level(s) "
              f"{', '.join(map(str, m['sweep']['levels']))}" if m.get("sweep") else
              f"  models: A = {(m.get('models') or {}).get('A', {}).get('name')}, "
              f"B = {(m.get('models') or {}).get('B', {}).get('name')}"),
             f"  runtime {runtime.get('name')}" + (f", image {runtime['image'].get('tag')}" if runtime.get("image") else "")
             + f"; GPU {_gpu(m)}; vLLM {env.get('vllm_version') or '-'}; driver {env.get('driver') or '-'}"]
    for j in sorted(m.get("jobs") or [], key=lambda j: (j.get("started") or "", j["unit"], j["repeat"])):
        when = (f"{j.get('started', '?')} .. {j.get('ended', '?')}" if wide
                else f"{_clock(j.get('started'))}..{_clock(j.get('ended'))}")
        lines.append(f"  job {j['unit']} r{j['repeat']} on {j.get('lane', '-')}: "
                     + ("ok" if j.get("ok") else f"FAILED ({j.get('error')})")
                     + f" in {j.get('seconds', 0):.0f} s, {when}")
    lines += [f"  files: {run_dir.path}/",
              "    manifest.json, <unit>/r<k>/ (events.jsonl, server logs, workload.log), tables/, figures/"]
    if wide:
        return "\n".join(lines)
    return "\n".join(wrap(line, width, rest="      ") for line in lines)
