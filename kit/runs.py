"""Finding runs: `kit ls` (one line per run) and `kit show RUN` (one run's summary and files)."""
from pathlib import Path

from tabulate import tabulate

from kit import layout
from kit.errors import BadRecord


def _state(manifest):
    jobs = manifest.get("jobs") or []
    failed = sum(1 for j in jobs if not j.get("ok"))
    if manifest.get("complete") is not True:
        return "incomplete" + (" (interrupted)" if manifest.get("interrupted") else "")
    return f"complete, {failed} failed job(s)" if failed else "complete"


def _gpu(manifest):
    env = manifest.get("environment") or {}
    names = sorted({g.get("name") for g in env.get("gpus") or [] if isinstance(g, dict) and g.get("name")})
    return ", ".join(names) or "-"


def listing(results_dir):
    """[[id, created, tables, GPU, runtime, state]] of every run, oldest first; damaged runs say so."""
    rows = []
    for run, manifest in layout.list_runs(results_dir):
        if isinstance(manifest, BadRecord):
            rows.append([run.run_id, "?", "?", "?", "?", f"damaged: {manifest.message}"])
            continue
        options = manifest.get("options") or {}
        rows.append([run.run_id, (manifest.get("created") or "?").replace("T", " ").rstrip("Z"),
                     ",".join(map(str, options.get("tables") or [])) or ("guide" if manifest.get("sweep") else "-"),
                     _gpu(manifest),
                     (manifest.get("runtime") or {}).get("name", "?"), _state(manifest)])
    return sorted(rows, key=lambda r: (r[1], r[0]))


def listing_text(rows):
    return tabulate(rows, ["run", "created (UTC)", "tables", "GPU", "runtime", "state"], tablefmt="simple",
                    disable_numparse=True)


def empty_hint(results_dir):
    reference = Path(results_dir) / layout.REFERENCE
    hint = "start one with `kit run 1`"
    if reference.is_dir():
        hint += f"; committed reference runs: `kit ls --results-dir {reference}`"
    return hint


def show_text(run_dir):
    m = run_dir.read_manifest()
    options = m.get("options") or {}
    runtime = m.get("runtime") or {}
    env = m.get("environment") or {}
    lines = [f"run {run_dir.run_id}: {_state(m)}",
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
        lines.append(f"  job {j['unit']} r{j['repeat']} on {j.get('lane', '-')}: "
                     + ("ok" if j.get("ok") else f"FAILED ({j.get('error')})")
                     + f" in {j.get('seconds', 0):.0f} s, {j.get('started', '?')} .. {j.get('ended', '?')}")
    lines += [f"  files: {run_dir.path}/",
              "    manifest.json, <unit>/r<k>/ (events.jsonl, server logs, workload.log), tables/, figures/"]
    return "\n".join(lines)
