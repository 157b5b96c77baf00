"""Figures of a run: timelines, switch/prompt bars and memory traces (matplotlib, Agg).

Each figure is built in two steps: a *spec* function turns events.jsonl files into plain data
(lists/dicts, testable without pixels) and a *draw* function turns the spec into a PNG.
PNGs carry no software/date metadata, so re-plotting the same run gives the same bytes.
"""
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from kit import report, scenarios  # noqa: E402

KIND_COLOURS = {"load": "#4c72b0", "warmup": "#dd8452", "wake": "#55a868", "prompt": "#c44e52",
                "sleep": "#8172b3", "stop": "#937860"}
MODEL_HATCH = {"A": "", "B": "///", None: ".."}
ARM_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
PNG_METADATA = {"Software": None}  # no matplotlib version in the file; Agg PNGs carry no date
DPI = 100


# ---------------------------------------------------------------- reading

def _run(run):
    """A run as the tables read it (kit.report), from a Run or a run directory."""
    return run if isinstance(run, report.Run) else report.load_run(run)


def _first_repeat(run, arm):
    reps = _run(run).arms.get(arm) or []
    if not reps:
        return None, [], "arm did not run"
    return reps[0].repeat, reps[0].events, reps[0].error


# ---------------------------------------------------------------- specs

def timeline_spec(run, arms):
    """One row per arm (first repeat): {"arm", "repeat", "failed": error text or None,
    "segments": [{"kind", "model", "round", "start", "duration", "ok"}]} ("total" events left out)."""
    rows = []
    for arm in arms:
        repeat, evs, failed = _first_repeat(run, arm)
        segments = [{"kind": e["kind"], "model": e["model"], "round": e["round"], "start": e["start_s"],
                     "duration": e["duration_s"], "ok": e["ok"]} for e in evs if e["kind"] != "total"]
        rows.append({"arm": arm, "repeat": repeat, "failed": failed, "segments": segments})
    return rows


def _stats(values):
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}


def bars_spec(run, arms):
    """{"switch"|"prompt": {arm: {model: {"mean","min","max","n"} or None}}, "failed": {arm: text}}.
    Switch = wake (sleep arms) or load (no-sleep arm) of rounds 1..3; prompt = prompt events of
    rounds 1..3; every repeat that did not fail (a failed repeat is left out whole, as in the tables)."""
    spec = {"switch": {}, "prompt": {}, "failed": {}}
    for arm in arms:
        switch_kind = "wake" if scenarios.ARMS[arm].sleep_level else "load"
        reps = _run(run).arms.get(arm) or []
        errors = [r.error for r in reps]
        evs = [e for r in reps if r.error is None for e in r.events if e["round"] >= 1]  # whole repeats
        for metric, kind in (("switch", switch_kind), ("prompt", "prompt")):
            spec[metric][arm] = {m: _stats([e["duration_s"] for e in evs if e["kind"] == kind and e["model"] == m])
                                 for m in ("A", "B")}
        errors = [e for e in errors if e] or (["arm did not run"] if not reps else [])
        if errors:
            spec["failed"][arm] = errors[0]
    return spec


def memory_spec(run, arm):
    """{"arm", "repeat", "failed", "points": [{"label", "kind", "model", "gpu_before", "gpu_after",
    "rss_before", "rss_after"}]}
    for the first repeat of an arm, one point per event (before/after of GPU MiB used and server RSS MiB)."""
    repeat, evs, failed = _first_repeat(run, arm)
    points = [{"label": f"{e['kind']} {e['model'] or ''}".strip(), "kind": e["kind"], "model": e["model"],
               "gpu_before": e.get("gpu_mib_before"), "gpu_after": e.get("gpu_mib_after"),
               "rss_before": e.get("rss_mib_before"), "rss_after": e.get("rss_mib_after")}
              for e in evs if e["kind"] != "total"]
    return {"arm": arm, "repeat": repeat, "failed": failed, "points": points}


def use_log_scale(spec_metric):
    values = [s[k] for per_model in spec_metric.values() for s in per_model.values() if s for k in ("min", "max")]
    values = [v for v in values if v > 0]
    return bool(values) and max(values) / min(values) > 20


# ---------------------------------------------------------------- drawing

def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def draw_timeline(rows, title, path):
    fig, ax = plt.subplots(figsize=(14, 1.6 + 1.1 * len(rows)))
    end = max([s["start"] + s["duration"] for r in rows for s in r["segments"]] or [1.0])
    for y, row in enumerate(rows):
        for s in row["segments"]:
            ax.barh(y, s["duration"], left=s["start"], height=0.6, color=KIND_COLOURS.get(s["kind"], "grey"),
                    hatch=MODEL_HATCH.get(s["model"], ""), edgecolor="red" if not s["ok"] else "black",
                    linewidth=2 if not s["ok"] else 0.4)
        if row["failed"]:
            ax.text(end * 1.01 if row["segments"] else end / 2, y, f"FAILED: {row['failed']}"[:70],
                    color="red", va="center", ha="left" if row["segments"] else "center", fontsize=9,
                    fontweight="bold")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['arm']}\n{scenarios.ARMS[r['arm']].title}" + (f" (r{r['repeat']})" if r["repeat"] else "")
                        for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -0.6)
    ax.set_xlim(0, end * 1.25)
    ax.set_xlabel("seconds since arm start")
    ax.set_title(title)
    kinds = [k for k in KIND_COLOURS if any(s["kind"] == k for r in rows for s in r["segments"])]
    handles = [Patch(facecolor=KIND_COLOURS[k], label=k) for k in kinds]
    handles += [Patch(facecolor="white", edgecolor="black", hatch=MODEL_HATCH[m], label=f"model {m}")
                for m in ("A", "B")]
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _draw_metric(ax, per_arm, failed, ylabel):
    arms = list(per_arm)
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        for j, model in enumerate(("A", "B")):
            x = j + (i - (len(arms) - 1) / 2) * width
            s = per_arm[arm][model]
            if s is None:
                ax.text(x, 0.5, f"{arm}: " + ("FAILED" if arm in failed else "no data"),
                        transform=ax.get_xaxis_transform(),
                        rotation=90, ha="center", va="center", color="red", fontsize=9, fontweight="bold")
                continue
            err = [[s["mean"] - s["min"]], [s["max"] - s["mean"]]]
            label = arm + (" (some repeats FAILED)" if arm in failed else "")
            ax.bar(x, s["mean"], width * 0.9, yerr=err, capsize=4, color=ARM_COLOURS[i % len(ARM_COLOURS)],
                   label=label if j == 0 or per_arm[arm]["A"] is None else None, edgecolor="black", linewidth=0.5)
            ax.annotate(f"{s['mean']:.2f}", (x, s["max"]), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=7)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["model A", "model B"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylabel(ylabel)
    if use_log_scale(per_arm):
        ax.set_yscale("log")
        ax.set_ylabel(ylabel + " (log scale)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def draw_bars(spec, title, path):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    _draw_metric(ax1, spec["switch"], spec["failed"], "switch time, s (wake, or load when no sleep)")
    _draw_metric(ax2, spec["prompt"], spec["failed"], "first prompt time, s")
    ax1.set_title("Switch time, rounds 1-3")
    ax2.set_title("Prompt time, rounds 1-3")
    fig.suptitle(title + "\nmean, error bars min-max over rounds and repeats")
    fig.tight_layout()
    return _save(fig, path)


def _memory_series(ax, points, key, per_model):
    """Before/after pairs of each event (whichever was measured); dotted connectors to the previous
    event of the same series (one series for the GPU, one per model's server for RSS). Returns the
    number of values drawn."""
    last, drawn = {}, 0
    for i, p in enumerate(points):
        if per_model and p["model"] is None:
            continue
        pairs = [(x, y) for x, y in ((i - 0.3, p[f"{key}_before"]), (i + 0.3, p[f"{key}_after"])) if y is not None]
        if not pairs:
            continue
        series = p["model"] if per_model else None
        ax.plot(*zip(*pairs), "--" if series == "B" else "-", marker="o",
                color=KIND_COLOURS.get(p["kind"], "grey"), markersize=3)
        if series in last:
            ax.plot([last[series][0], pairs[0][0]], [last[series][1], pairs[0][1]], ":", color="grey", linewidth=0.8)
        last[series] = pairs[-1]
        drawn += len(pairs)
    if not drawn:
        ax.text(0.5, 0.3, "not measured", transform=ax.transAxes, ha="center", color="grey", fontsize=11)
    return drawn


def draw_memory(spec, path):
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    points = spec["points"]
    _memory_series(ax1, points, "gpu", per_model=False)
    _memory_series(ax2, points, "rss", per_model=True)
    ax1.set_ylabel("GPU memory used, MiB\n(all devices)")
    ax2.set_ylabel("server process-tree\nhost RSS, MiB")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    if spec["failed"]:
        ax1.text(0.5, 0.5, f"FAILED: {spec['failed']}"[:80], transform=ax1.transAxes, color="red",
                 ha="center", va="center", fontsize=12, fontweight="bold")
    ax2.set_xticks(range(len(points)))
    ax2.set_xticklabels([p["label"] for p in points], rotation=90, fontsize=7)
    kinds = [k for k in KIND_COLOURS if any(p["kind"] == k for p in points)]
    if kinds:
        ax1.legend(handles=[Patch(color=KIND_COLOURS[k], label=k) for k in kinds], fontsize=8, loc="upper left",
                   bbox_to_anchor=(1.005, 1.0))
    ax2.legend(handles=[Line2D([], [], color="black", linestyle="-", label="model A server"),
                        Line2D([], [], color="black", linestyle="--", label="model B server")],
               fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    rep = f" (repeat {spec['repeat']})" if spec["repeat"] else ""
    ax1.set_title(f"{spec['arm']}: {scenarios.ARMS[spec['arm']].title}{rep} - before/after each event")
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------- entry point

def plot_run(run_dir, numbers):
    """Write figures/table<N>-timeline.png and table<N>-bars.png per table and memory-<arm>.png per
    arm of those tables; return the paths written."""
    run_dir = Path(run_dir)
    run = report.load_run(run_dir)
    figures = run_dir / "figures"
    paths = []
    for n in sorted(set(int(x) for x in numbers)):
        table = scenarios.TABLES[n]
        title = f"Table {n}: {table.title}"
        paths.append(draw_timeline(timeline_spec(run, table.arms), title, figures / f"table{n}-timeline.png"))
        paths.append(draw_bars(bars_spec(run, table.arms), title, figures / f"table{n}-bars.png"))
    for arm in scenarios.arms_for(numbers):
        paths.append(draw_memory(memory_spec(run, arm), figures / f"memory-{arm}.png"))
    return paths


def expected_figures(numbers):
    """File names plot_run writes for these tables (for bundle checks and tests)."""
    names = [f"table{n}-{kind}.png" for n in sorted(set(int(x) for x in numbers)) for kind in ("timeline", "bars")]
    return names + [f"memory-{arm}.png" for arm in scenarios.arms_for(numbers)]
