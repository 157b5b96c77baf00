"""Figures of a run, one set per table: bars (switch, prompt, total), a timeline, and a memory trace per unit;
and one for the whole run: the load breakdown (stacked bars, kit.results.loads); and for
a sweep run (kit sweep): its guide (switch by model size and level against the bandwidth bound, host RAM held).

Each figure is built in two steps: a *spec* function turns a run (kit.results) into a spec, a frozen
dataclass of plain data (one class per kind: BarsSpec, TimelineSpec, ...; testable without pixels), and a
*figure* function (BUILDERS, by kind) turns the spec into a matplotlib Figure (the object-oriented API: no
pyplot, no global backend), saved as figures/<name>.png (200 dpi) and .svg.
plots(run, numbers) is the one list of a run's figures (name, spec) that `kit plot`, `kit bundle` and
`kit site` draw.

- Bars are the table's numbers: the median and min..max of kit.results.build_table's cells, so a figure
  and its table never disagree; the table's published references are drawn beside them (hatched).
- Every figure carries its provenance (run id, GPU, vLLM, models or twins, protocol, output length,
  repeats, compile cache), and names each arm that failed, did not run or is unfinished.
- Memory axes start at zero and each sleep and wake is annotated with its change in MiB/GiB.
- The files carry no date or software version: re-plotting the same run gives the same bytes.
"""
import hashlib
import json
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import ClassVar

import matplotlib
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from kit import layout, results
from kit.results import guide as guides
from kit.results import loads as load_table
from kit.results import published, render, tables
from kit.workload import scenarios
from kit.workload.steps import base_arm

DPI = 200
FORMATS = ("png", "svg")
PNG_METADATA = {"Software": None}                  # Agg PNGs carry no date
SVG_METADATA = {"Date": None, "Creator": None}     # no date, no matplotlib version
SVG_RC = {"svg.hashsalt": "sleepkit",            # stable ids
          "svg.fonttype": "none"}     # text as SVG text: a third less drawing time and size than glyph paths
ARM_COLOURS = {"l1": "#4c72b0", "nosleep": "#c44e52", "l1-fp8": "#55a868", "l1-nowarm": "#8172b3", "l2": "#dd8452"}
KIND_COLOURS = {"load": "#4c72b0", "warmup": "#dd8452", "wake": "#55a868", "prompt": "#c44e52",
                "sleep": "#8172b3", "stop": "#937860"}
KIND_LETTER = {"load": "L", "warmup": "W", "wake": "w", "prompt": "P", "sleep": "S", "stop": "x"}
MODEL_HATCH = {"A": "", "B": "//", None: ""}
PUBLISHED_HATCH = ["///", "xxx", "..."]
STATE_NOTE = {"failed": "FAILED", "not run": "not run", "unfinished": "unfinished (not run yet)", "suspect": "SUSPECT"}
NAN = float("nan")
PANELS = [("switch", "Switch, rounds 1-3: wake (sleep) or restart load (no sleep)", ("A", "B")),
          ("prompt", "Prompt, rounds 1-3", ("A", "B")),
          ("total", "Total time of the arm\n(published: no set-up sleeps, no stops)", (None,))]


# ---------------------------------------------------------------- reading and text

def _arm_colour(unit):
    return ARM_COLOURS.get(base_arm(unit), "grey")


def _light(colour, amount=0.55):
    return tuple(c + (1 - c) * amount for c in to_rgb(colour))


def pick_repeat(run, unit, state):
    """The repeat a timeline or memory figure shows: of a failed arm, its first failed repeat (what went
    wrong); else the first usable one; else the first there is. None when the unit has no repeat."""
    reps = run.units.get(unit) or []
    if state == "failed":
        bad = [r for r in reps if not r.ok and not r.pending]
        if bad:
            return bad[0]
    return next((r for r in reps if r.ok), reps[0] if reps else None)


def state_note(arm_state):
    """Text for an arm that is not plainly ok (None when it is)."""
    s = arm_state["state"]
    if s in ("failed", "unfinished"):
        return f"{STATE_NOTE[s]}: " + "; ".join(arm_state["errors"])
    if s == "not run":
        return "not run (not part of this run)"
    if s == "suspect":
        return f"SUSPECT: {len(arm_state['failed_checks'])} sleep check(s) failed"
    return None


def fmt_mib(delta):
    """A memory change as people read it: '+10 MiB', '-22.6 GiB'."""
    if delta is None:
        return ""
    if abs(delta) < 1024:
        return f"{delta:+.0f} MiB"
    return f"{delta / 1024:+.1f} GiB"


def provenance(facts):
    """Lines that say where a figure's numbers come from (facts: kit.results.tables.run_facts)."""
    na = lambda value: value if value not in (None, "") else "n/a"
    output = (f"output fixed at {scenarios.MAX_TOKENS} tokens (ignore_eos)" if facts.fixed_output
              else f"output not fixed (stops at EOS or {scenarios.MAX_TOKENS} tokens)")
    models = [f"{k} = {v.name}" + (f" (twin of {v.twin}: random weights, the real model's shape)"
                                    if v.twin else "") for k, v in facts.models.items()]
    return render.stand_in_lines(facts) + [f"run {facts.run_id}" + ("" if facts.complete else " (incomplete)")
            + f"  |  GPU: {na(facts.gpu)}  |  vLLM {na(facts.vllm)}  |  protocol: {na(facts.protocol)}  |  {output}"
            + f"  |  repeats: {na(facts.repeat)}  |  compile cache: {na(facts.cache)}",
            "models: " + ("; ".join(models) or "n/a")]


# ---------------------------------------------------------------- bars

def _bar(group, arm_state, source, cell, numbers):
    bar = {"group": group, "arm": arm_state["arm"], "unit": arm_state["unit"], "source": source,
           "median": None, "min": None, "max": None, "n": 0, "note": None}
    if not numbers:
        bar["note"] = STATE_NOTE[arm_state["state"]]
    elif not cell:
        bar["note"] = "no data"
    else:
        bar.update(median=cell["median"], min=cell["min"], max=cell["max"], n=cell["n"])
    return bar


@dataclass(frozen=True)
class BarsSpec:
    kind: ClassVar[str] = "bars"
    table: int
    title: str
    provenance: list
    repeat: int | None
    arms: list          # [{arm, unit, title, state, note}]
    sources: list       # [{key, label}]
    panels: list        # [{metric, title, unit, groups, bars: [{group, arm, unit, source, median, min, max, n, note}]}]


def bars_spec(run, number, table=None):
    """A table's bars: every number is a cell of build_table(run, number), its source "measured" or a published
    reference's GPU."""
    table = (table or results.build_table(run, number)).to_json()
    facts = tables.run_facts(run)
    sources = [{"key": "measured", "label": f"measured: {facts.gpu or 'GPU n/a'}, vLLM {facts.vllm or 'n/a'}"}]
    sources += [{"key": r["gpu"], "label": f"published: {r['label']} (blog figure {r['figure']})"}
                for r in table["published"]]
    rows = {(r["metric"], r["model"]): r for r in table["rows"]}
    panels = []
    for metric, title, groups in PANELS:
        bars = []
        for group in groups:
            row = rows.get((metric, group))
            for s in table["arms"]:
                numbers = s["state"] not in tables.NO_NUMBERS
                bars.append(_bar(group, s, "measured", row and row["arms"][s["arm"]], numbers))
                for i, src in enumerate(sources[1:]):
                    bars.append(_bar(group, s, src["key"], row and row["published"][i]["arms"][s["arm"]], True))
        panels.append({"metric": metric, "title": title, "unit": "s", "groups": list(groups), "bars": bars})
    arms = [{"arm": s["arm"], "unit": s["unit"], "title": s["title"], "state": s["state"], "note": state_note(s)}
            for s in table["arms"]]
    return BarsSpec(table=number, title=f"Table {number}: {table['title']}", provenance=provenance(facts),
                    repeat=facts.repeat, arms=arms, sources=sources, panels=panels)


def _draw_bars(ax, width, style, placed):
    """One source's bars of a panel in one call (fewer artists, the same picture): median, whiskers min..max,
    each labelled with its median. placed: [(x, bar)]."""
    colours = [_arm_colour(bar["unit"]) for _, bar in placed]
    ax.bar([x for x, _ in placed], [bar["median"] for _, bar in placed], width * 0.92,
           yerr=[[bar["median"] - bar["min"] for _, bar in placed], [bar["max"] - bar["median"] for _, bar in placed]],
           capsize=2, color=colours if style is None else [_light(c) for c in colours], hatch=style or "",
           edgecolor=colours if style else "black", linewidth=0.6, error_kw={"elinewidth": 0.8})
    for x, bar in placed:
        ax.annotate(f"{bar['median']:.3g}", (x, bar["max"]), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=6.5, rotation=90)


def _draw_panel(ax, panel, styles):
    per_group = len(panel["bars"]) // len(panel["groups"])
    width = 0.86 / per_group
    placed = {}
    for j in range(len(panel["groups"])):
        for k, bar in enumerate(panel["bars"][j * per_group:(j + 1) * per_group]):
            x = j + (k - (per_group - 1) / 2) * width
            if bar["median"] is not None:
                placed.setdefault(bar["source"], []).append((x, bar))
            else:
                ax.text(x, 0.02, bar["note"], transform=ax.get_xaxis_transform(), rotation=90, ha="center",
                        va="bottom", fontsize=7, fontweight="bold", color="red" if bar["note"] != "no data" else "grey")
    for source, bars in placed.items():
        _draw_bars(ax, width, styles[source], bars)
    ax.set_xticks(range(len(panel["groups"])))
    ax.set_xticklabels(["all" if g is None else f"model {g}" for g in panel["groups"]])
    ax.set_xlim(-0.5, len(panel["groups"]) - 0.5)
    tops = [b["max"] for b in panel["bars"] if b["max"] is not None]
    ax.set_ylim(0, max(tops or [1]) * 1.22)
    ax.set_ylabel("seconds (linear, from 0)")
    ax.set_title(panel["title"], fontsize=10, y=1.0)     # y: no search for a place above ticks
    ax.grid(axis="y", alpha=0.3)


def _legend_handles(spec, styles):
    """Arms in the first column, sources in the second."""
    arms = [Patch(facecolor=_arm_colour(a["unit"]), edgecolor="black",
                  label=f"{a['unit']}: {a['title']}" + (f"  [{a['note'][:70]}]" if a["note"] else ""))
            for a in spec.arms]
    sources = [Patch(facecolor="grey" if styles[s["key"]] is None else _light("grey"), hatch=styles[s["key"]] or "",
                     edgecolor="black" if styles[s["key"]] is None else "grey", label=s["label"])
               for s in spec.sources]
    blank = Patch(facecolor="none", edgecolor="none", label=" ")
    rows = max(len(arms), len(sources))
    return arms + [blank] * (rows - len(arms)) + sources + [blank] * (rows - len(sources))


def bars_figure(spec):
    """One panel per metric (switch, prompt, total), the measured bars beside the published ones."""
    styles = {s["key"]: (None if i == 0 else PUBLISHED_HATCH[(i - 1) % len(PUBLISHED_HATCH)])
              for i, s in enumerate(spec.sources)}
    fig = Figure(figsize=(15, 7.2))
    grid = GridSpec(1, 3, figure=fig, width_ratios=[2, 2, 1.2], left=0.05, right=0.99, top=0.78, bottom=0.15,
                    wspace=0.22)
    for i, panel in enumerate(spec.panels):
        _draw_panel(fig.add_subplot(grid[0, i]), panel, styles)
    fig.legend(handles=_legend_handles(spec, styles), loc="upper left", bbox_to_anchor=(0.045, 0.915),
               ncol=2, fontsize=8, frameon=False)
    reps = spec.repeat or 1
    _frame(fig, spec.title, spec.provenance + [
        f"bars: median; whiskers: min..max. Measured: rounds 1-3 x {reps} repeat(s) (the table's cells; "
        "a failed arm has no bars, as in the table). Published: the blog figure's 3 rounds (the blog drew means)."])
    return fig


# ---------------------------------------------------------------- timeline

def _segments(events):
    return [{"kind": e["kind"], "model": e["model"], "round": e["round"], "start": e["start_s"],
             "duration": e["duration_s"], "ok": e["ok"]} for e in events if e["kind"] != "total"]


def _published_segments(ref, arm):
    out, t = [], 0.0
    for e in ref["arms"][arm]["events"]:
        out.append({"kind": e["kind"], "model": e["model"], "round": e["round"], "start": round(t, 6),
                    "duration": e["duration_s"], "ok": True})
        t += e["duration_s"]
    return out


def switches(segments):
    """Rounds 1-3 cut into switches: consecutive events of one (round, model), each with its offset from the
    switch's start. A sleep arm's final stops are not part of a switch."""
    sleep_arm = any(s["kind"] == "wake" for s in segments)
    out = []
    for s in segments:
        if s["round"] < 1 or (sleep_arm and s["kind"] == "stop"):
            continue
        if not out or (out[-1]["round"], out[-1]["model"]) != (s["round"], s["model"]):
            out.append({"round": s["round"], "model": s["model"], "start": s["start"], "segments": []})
        out[-1]["segments"].append(dict(s, offset=round(s["start"] - out[-1]["start"], 6)))
    return out


@dataclass(frozen=True)
class TimelineSpec:
    kind: ClassVar[str] = "timeline"
    table: int
    title: str
    provenance: list
    sources: list       # measured, then the published references' GPUs
    published: list     # the published references' labels
    end: float          # seconds: where the data ends
    rows: list          # [{label, unit, source, repeat, note, total, segments}]
    zooms: list         # [{unit, label, note, switches: {source: [switch]}}]


def timeline_spec(run, number, table=None):
    """The measured arms (one repeat each, see pick_repeat) with the table's published series beside them;
    zooms: the switch rounds, per switch."""
    table = (table or results.build_table(run, number)).to_json()
    refs = published.references(number)
    rows, zooms = [], []
    for s in table["arms"]:
        rep = pick_repeat(run, s["unit"], s["state"])
        segs = _segments(rep.events) if rep else []
        ends = [x["start"] + x["duration"] for x in segs]
        total = next((e["duration_s"] for e in (rep.events if rep else []) if e["kind"] == "total"),
                     max(ends) if ends else None)
        rows.append({"label": f"{s['unit']} measured" + (f" r{rep.repeat}" if rep else ""), "unit": s["unit"],
                     "source": "measured", "repeat": rep.repeat if rep else None, "note": state_note(s),
                     "total": total if total is None else round(total, 6), "segments": segs})
        pub = {r["gpu"]: _published_segments(r, s["arm"]) for r in refs}
        rows += [{"label": f"{s['arm']} published {g}", "unit": s["unit"], "source": g, "repeat": None,
                  "note": None, "total": round(sum(x["duration"] for x in p), 6), "segments": p}
                 for g, p in pub.items()]
        zooms.append({"unit": s["unit"], "label": f"{s['unit']}: {s['title']}", "note": state_note(s),
                      "switches": {"measured": switches(segs), **{g: switches(p) for g, p in pub.items()}}})
    end = max([x["start"] + x["duration"] for r in rows for x in r["segments"]] or [1.0])
    return TimelineSpec(table=number, title=f"Table {number}: {table['title']} - timeline",
                        provenance=provenance(tables.run_facts(run)), sources=["measured", *[r["gpu"] for r in refs]],
                        published=[r["label"] + f" (blog figure {r['figure']})" for r in refs],
                        end=round(end, 6), rows=rows, zooms=zooms)


def _segment_bars(ax, rows, labels_over=None):
    """rows: [(y, height, light, segments)]. The segments as one collection per hatch and edge: the picture of
    a bar per segment with a few artists, which draw much faster; each segment of labels_over seconds or more
    labelled with its kind and duration."""
    groups = {}
    for y, height, light, segments in rows:
        for s in segments:
            colour = KIND_COLOURS.get(s["kind"], "grey")
            x = s.get("offset", s["start"])
            x1, y0, y1 = x + s["duration"], y - height / 2, y + height / 2
            boxes, faces = groups.setdefault((MODEL_HATCH.get(s["model"], ""), s["ok"]), ([], []))
            boxes.append([(x, y0), (x1, y0), (x1, y1), (x, y1)])
            faces.append(_light(colour, 0.5) if light else colour)
            if labels_over is not None and s["duration"] >= labels_over:
                ax.text(x + s["duration"] / 2, y, f"{KIND_LETTER.get(s['kind'], '?')} {s['duration']:.3g}",
                        ha="center", va="center", fontsize=6.5,
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 0.8})
    for (hatch, ok), (boxes, faces) in groups.items():
        ax.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors="black" if ok else "red",
                                         linewidths=0.3 if ok else 2, hatch=hatch or None), autolim=False)


def _draw_main(ax, spec):
    end = spec.end
    _segment_bars(ax, [(y, 0.62 if row["source"] == "measured" else 0.45, row["source"] != "measured", row["segments"])
                       for y, row in enumerate(spec.rows)], labels_over=end * 0.035)
    for y, row in enumerate(spec.rows):
        if row["note"]:              # in the gap above its row, where no segment is
            ax.text(end * 0.003, y - 0.34, row["note"][:150], color="red", ha="left", va="bottom", fontsize=7.5,
                    fontweight="bold")
    ax.set_yticks(range(len(spec.rows)))
    ax.set_yticklabels([f"{r['label']}\n" + ("no events" if r["total"] is None else f"total {r['total']:.1f} s")
                        for r in spec.rows], fontsize=7.5)
    for tick, row in zip(ax.get_yticklabels(), spec.rows):
        tick.set_color("black" if row["source"] == "measured" else "#555555")
    ax.set_ylim(len(spec.rows) - 0.5, -0.5)
    ax.set_xlim(0, end)
    ax.set_xlabel("seconds since the arm started (measured) / cumulative (published)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _switch_label(key, switch):
    """'round 1 A' over the measured durations of that switch ('w 0.15  P 0.62  S 0.30')."""
    segments = switch["segments"] if switch else []
    parts = "  ".join(f"{KIND_LETTER.get(x['kind'], '?')} {x['duration']:.2f}" for x in segments)
    return f"round {key[0]} {key[1]}\n{parts}"


def _draw_zoom(ax, zoom, sources):
    by = {g: {(sw["round"], sw["model"]): sw for sw in zoom["switches"].get(g) or []} for g in sources}
    extra = [g for g in sources[1:] if by[g]]
    keys = list(by["measured"] or (by[extra[0]] if extra else {}))
    rows = []
    for y, key in enumerate(keys):
        if key in by["measured"]:
            rows.append((y - 0.17, 0.36, False, by["measured"][key]["segments"]))
        rows += [(y + 0.12 + 0.2 * i, 0.17, True, by[g][key]["segments"]) for i, g in enumerate(extra) if key in by[g]]
    _segment_bars(ax, rows)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([_switch_label(key, by["measured"].get(key)) for key in keys], fontsize=7)
    ax.set_ylim(len(keys) - 0.45, -0.5)
    ends = [sw["segments"][-1]["offset"] + sw["segments"][-1]["duration"] for d in by.values() for sw in d.values()]
    ax.set_xlim(0, max(ends or [1.0]))
    order = "measured (thick)" + (f", published {', '.join(extra)}" if extra else "")
    ax.set_xlabel(f"seconds since the switch started  |  top to bottom: {order}", fontsize=7.5)
    ax.set_title(f"{zoom['label']}: each switch, zoomed" + (f"\n{zoom['note'][:80]}" if zoom["note"] else ""),
                 fontsize=9, color="red" if zoom["note"] else "black", y=1.0)
    if not keys:
        ax.text(0.5, 0.5, "no switch rounds to show", transform=ax.transAxes, ha="center", color="red")
    ax.grid(axis="x", alpha=0.3)


def timeline_figure(spec):
    """Every event of one repeat per arm with the published series beside (x ends where the data ends), and
    below, per arm, each switch of rounds 1-3 zoomed (its own x axis, measured above published)."""
    n_rows, n_switch = len(spec.rows), max([len(z["switches"]["measured"]) for z in spec.zooms] + [6])
    main_h, zoom_h = 0.5 * n_rows + 0.6, 0.42 * n_switch + 0.9
    height = main_h + zoom_h + 2.3
    fig = Figure(figsize=(15, height))
    top, bottom = 1 - 0.95 / height, 1.0 / height
    grid = GridSpec(2, len(spec.zooms), figure=fig, height_ratios=[main_h, zoom_h], left=0.12, right=0.99,
                    top=top, bottom=bottom, hspace=0.9 / ((main_h + zoom_h) / 2), wspace=0.3)   # ~0.9 in apart
    _draw_main(fig.add_subplot(grid[0, :]), spec)
    for i, zoom in enumerate(spec.zooms):
        _draw_zoom(fig.add_subplot(grid[1, i]), zoom, spec.sources)
    kinds = [k for k in KIND_COLOURS if any(s["kind"] == k for r in spec.rows for s in r["segments"])]
    handles = [Patch(facecolor=KIND_COLOURS[k], label=f"{KIND_LETTER[k]} = {k}") for k in kinds]
    handles += [Patch(facecolor="white", edgecolor="black", hatch=MODEL_HATCH[m], label=f"model {m}") for m in "AB"]
    handles += [Patch(facecolor=_light("grey", 0.5), label="lighter, thinner: published")]
    if any(not s["ok"] for r in spec.rows for s in r["segments"]):
        handles.append(Patch(facecolor="white", edgecolor="red", linewidth=2, label="failed event"))
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.99, 1 - 0.25 / height), ncol=5, fontsize=8,
               frameon=False)
    _frame(fig, spec.title, spec.provenance + [
        "published: " + "; ".join(spec.published) + " - the blog's timelines have no set-up sleeps or stops"])
    return fig


# ---------------------------------------------------------------- memory

def _delta(after, before):
    return None if after is None or before is None else after - before


@dataclass(frozen=True)
class MemorySpec:
    kind: ClassVar[str] = "memory"
    unit: str
    title: str
    level: int | None
    repeat: int | None
    state: str
    note: str | None
    provenance: list
    first_sleep: dict   # {model: RSS MiB added}
    points: list        # [{label, kind, model, round, ok, gpu_before, gpu_after, gpu_delta, rss_before, ...}]
    limits: dict | None = None  # the axes every memory figure of the run shares (memory_limits); None: its own


def memory_spec(run, unit):
    """One repeat of a unit (see pick_repeat), before and after every event."""
    s = tables.arm_state(run, unit, "").to_json()
    rep = pick_repeat(run, unit, s["state"])
    points = []
    for e in (rep.events if rep else []):
        if e["kind"] == "total":
            continue
        g0, g1, r0, r1 = (e.get(k) for k in ("gpu_mib_before", "gpu_mib_after", "rss_mib_before", "rss_mib_after"))
        points.append({"label": f"{e['kind']} {e['model']} r{e['round']}", "kind": e["kind"], "model": e["model"],
                       "round": e["round"], "ok": e["ok"], "gpu_before": g0, "gpu_after": g1,
                       "gpu_delta": _delta(g1, g0), "rss_before": r0, "rss_after": r1, "rss_delta": _delta(r1, r0)})
    first = {}
    for p in points:
        if p["kind"] == "sleep" and p["model"] not in first:
            first[p["model"]] = p["rss_delta"]
    arm = scenarios.ARMS.get(base_arm(unit))
    return MemorySpec(unit=unit, title=s["title"], level=arm.sleep_level if arm else None,
                      repeat=rep.repeat if rep else None, state=s["state"], note=state_note(s),
                      provenance=provenance(tables.run_facts(run, [unit])), first_sleep=first, points=points)


def _annotate(ax, x, y, delta, kind, bold):
    ax.annotate(fmt_mib(delta), (x, y), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                rotation=90, fontsize=6.5, color=KIND_COLOURS.get(kind, "black"),
                fontweight="bold" if bold else "normal")


def memory_limits(specs):
    """{"gpu": MiB, "rss": MiB}: the tops of the axes every memory figure of a run shares (zero-based), so a
    +10 MiB level-2 sleep in one figure looks as small as it is beside a +8 GiB level-1 sleep in another."""
    tops = {}
    for key in ("gpu", "rss"):
        values = [p[f"{key}_{w}"] for spec in specs for p in spec.points for w in ("before", "after")]
        tops[key] = max([v for v in values if v is not None] + [1]) * 1.45
    return tops


def _memory_series(ax, points, key, per_model, top_limit):
    """Before/after of each event (o before, o after, joined), dotted between events of one series (the GPU;
    for RSS each model's server); the change annotated on sleeps and wakes, and on other events that moved it."""
    last, top, firsts = {}, 0, set()
    lines, dots = {}, []        # one line per style and colour, its pieces apart (nan): fewer artists, same picture
    for i, p in enumerate(points):
        pairs = [(x, y) for x, y in ((i - 0.3, p[f"{key}_before"]), (i + 0.3, p[f"{key}_after"])) if y is not None]
        if not pairs or (per_model and p["model"] is None):
            continue
        series = p["model"] if per_model else None
        lines.setdefault(("--" if series == "B" else "-", KIND_COLOURS.get(p["kind"], "grey")), []).extend(
            [*pairs, (NAN, NAN)])
        if series in last:
            dots += [last[series], pairs[0], (NAN, NAN)]
        last[series] = pairs[-1]
        top = max([top] + [y for _, y in pairs])
        delta = p[f"{key}_delta"]
        if delta is not None and (p["kind"] in ("sleep", "wake") or delta):
            first = p["kind"] == "sleep" and (p["model"] not in firsts)
            firsts |= {p["model"]} if p["kind"] == "sleep" else set()
            _annotate(ax, i, max(y for _, y in pairs), delta, p["kind"], first)
    for (style, colour), xy in lines.items():
        ax.plot(*zip(*xy), style, marker="o", color=colour, markersize=3, linewidth=1.5)
    if dots:
        ax.plot(*zip(*dots), ":", color="grey", linewidth=0.8)
    ax.set_ylim(0, top_limit or max(top, 1) * 1.45)
    if not last:
        ax.text(0.5, 0.4, "not measured" if points else "no events", transform=ax.transAxes, ha="center",
                color="grey", fontsize=11)


def _memory_summary(spec):
    level = spec.level
    firsts = ", ".join(f"{m} {fmt_mib(d)}" for m, d in spec.first_sleep.items() if d is not None) or "n/a"
    if level is None:
        return "no sleep mode: each switch stops one server and starts the other"
    expect = ("level 1 keeps the weights in host RAM: RSS grows by about the weight size"
              if level == 1 else "level 2 drops the weights: RSS should barely change")
    return f"host RSS added by each server's first sleep (bold): {firsts}  -  {expect}"


def memory_figure(spec):
    """GPU MiB used and each server's host RSS before/after every event, on zero-based axes (spec.limits:
    memory_limits of the run, so all its memory figures share them), each change annotated."""
    limits = spec.limits or {}
    fig = Figure(figsize=(15, 8))
    grid = GridSpec(2, 1, figure=fig, left=0.07, right=0.87, top=0.89, bottom=0.2, hspace=0.08)
    ax1, ax2 = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    points = spec.points
    _memory_series(ax1, points, "gpu", False, limits.get("gpu"))
    _memory_series(ax2, points, "rss", True, limits.get("rss"))
    scale = "from 0, shared" if limits else "from 0"
    ax1.set_ylabel(f"GPU memory used, MiB\n(the arm's GPU, {scale})", fontsize=8)
    ax2.set_ylabel(f"server process-tree host\nRSS, MiB ({scale})", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_xlim(-0.6, max(len(points), 1) - 0.4)
        ax.set_xticks(range(len(points)))
    ax1.set_xticklabels([])
    ax2.set_xticklabels([p["label"] for p in points], rotation=90, fontsize=7)
    if points:
        ax2.text(0.005, 0.97, _memory_summary(spec), transform=ax2.transAxes, va="top", fontsize=8,
                 bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "grey"})
    if spec.note:
        fig.text(0.01, 1 - 0.42 / fig.get_figheight(), spec.note[:160], color="red", ha="left", va="top",
                 fontsize=10, fontweight="bold")
    kinds = [k for k in KIND_COLOURS if any(p["kind"] == k for p in points)]
    handles = [Patch(color=KIND_COLOURS[k], label=k) for k in kinds]
    handles += [Line2D([], [], color="black", linestyle="-", label="model A server (RSS)"),
                Line2D([], [], color="black", linestyle="--", label="model B server (RSS)"),
                Line2D([], [], color="grey", linestyle=":", label="between events")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.875, 0.88), fontsize=8, frameon=False)
    rep = f", repeat r{spec.repeat}" if spec.repeat else ""
    _frame(fig, f"Memory of {spec.unit}: {spec.title}{rep} - before and after each event", spec.provenance
           + ["o-o = before and after an event; labels = the change (MiB below 1 GiB, else GiB)"
              + ("; every memory figure of this run has these axes" if limits else "")])
    return fig


# ---------------------------------------------------------------- load breakdown

PART_COLOURS = {"weights": "#4c72b0", "compile": "#c44e52", "graphs": "#8172b3", "engine_rest": "#dd8452",
                "startup": "#bbbbbb"}


@dataclass(frozen=True)
class LoadsSpec:
    kind: ClassVar[str] = "loads"
    title: str
    provenance: list
    parts: list         # [{part, label}]
    bars: list          # [{label, unit, model, cache, n, load: stats, segments: [{part, seconds}]}]


def loads_spec(run, table=None):
    """One bar per row of build_loads(run), its segments the rows' part medians."""
    table = (table or load_table.build_loads(run)).to_json()
    bars = []
    for r in table["rows"]:
        segments = [{"part": name, "seconds": r["parts"][name]["median"]} for name, _ in load_table.PARTS
                    if r["parts"][name]]
        bars.append({"label": f"{r['unit']} {r['model']} {r['cache'] or '?'} (n={r['n']})", "unit": r["unit"],
                     "model": r["model"], "cache": r["cache"], "n": r["n"], "load": r["load"], "segments": segments})
    return LoadsSpec(title="Load breakdown: what each server load was made of",
                     provenance=provenance(tables.run_facts(run)),
                     parts=[{"part": name, "label": label} for name, label in load_table.PARTS], bars=bars)


def loads_figure(spec):
    """Horizontal stacked bars (part medians), the measured load's median as a black tick with min..max."""
    rows = max(len(spec.bars), 1)
    fig = Figure(figsize=(15, max(6.0, 2.6 + 0.36 * rows)))
    height = fig.get_figheight()
    ax = fig.add_axes([0.16, 1.1 / height, 0.82, 1 - 2.0 / height])
    for y, bar in enumerate(spec.bars):
        left = 0.0
        for seg in bar["segments"]:
            ax.barh(y, seg["seconds"], left=left, height=0.7, color=PART_COLOURS[seg["part"]], edgecolor="white",
                    linewidth=0.5)
            left += seg["seconds"]
        load = bar["load"]
        if load:
            ax.errorbar(load["median"], y, xerr=[[load["median"] - load["min"]], [load["max"] - load["median"]]],
                        fmt="|", color="black", markersize=14, capsize=3, elinewidth=0.8)
            ax.annotate(f"{load['median']:.1f} s", (load["max"], y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7)
    ax.set_yticks(range(len(spec.bars)))
    ax.set_yticklabels([b["label"] for b in spec.bars], fontsize=8)
    ax.invert_yaxis()
    tops = [b["load"]["max"] for b in spec.bars if b["load"]]
    ax.set_xlim(0, max(tops or [1]) * 1.12)
    ax.set_xlabel("seconds (linear, from 0)")
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(facecolor=PART_COLOURS[p["part"]], label=p["label"]) for p in spec.parts]
    handles.append(Line2D([], [], color="black", marker="|", linestyle="none", markersize=10,
                          label="measured load: median, min..max"))
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles), fontsize=7.5,
              frameon=False)
    _frame(fig, spec.title, spec.provenance + [
        "segments: the medians of each part over a row's loads (one row per unit, model and compile-cache state: "
        "miss = compiled, hit = loaded from the cache); start-up = the load less weights and engine init"])
    return fig


# ---------------------------------------------------------------- guide (kit sweep)

LEVEL_COLOURS = {1: ARM_COLOURS["l1"], 2: ARM_COLOURS["l2"]}


@dataclass(frozen=True)
class GuideSpec:
    kind: ClassVar[str] = "guide"
    title: str
    provenance: list
    levels: list
    models: list        # [{slug, size}]
    bars: list          # [{model, level, sleep, wake, switch_min, switch_max, bound_s, ram_gib, note}]
    summary: list       # lines


def guide_spec(run, guide=None):
    """A sweep's guide: every number is a cell of the guide."""
    typed = guide or guides.build_guide(run)
    guide = typed.to_json()
    models = list(dict.fromkeys((r["slug"], r["size"]) for r in guide["rows"]))
    bars = []
    for r in guide["rows"]:
        med = lambda key, r=r: r[key]["median"] if r.get(key) else None
        bound = r["bound_s"] * (2 if r["level"] == 1 else 1) if r["bound_s"] else None   # L1 moves out and back
        bars.append({"model": r["slug"], "level": r["level"], "sleep": med("sleep"), "wake": med("wake"),
                     "switch_min": r["switch"]["min"] if r["switch"] else None,
                     "switch_max": r["switch"]["max"] if r["switch"] else None,
                     "bound_s": bound, "ram_gib": med("ram_held_gib"),
                     "note": None if r["switch"] else (r["state"] if r["state"] != "skipped" else "skipped")})
    return GuideSpec(title=guides.header(typed)[0], provenance=guides.header(typed)[1:], levels=guide["run"]["levels"],
                     models=[{"slug": m, "size": size} for m, size in models], bars=bars,
                     summary=guides.summary_lines(typed))


def guide_figure(spec):
    """Left: each model's switch per level, sleep (light) under wake (dark), whiskers min..max of the switch,
    a black tick at the bandwidth bound. Right: host RAM held while asleep."""
    fig = Figure(figsize=(14, 6.5))
    grid = GridSpec(1, 2, figure=fig, width_ratios=[2.2, 1], left=0.06, right=0.99, top=0.84, bottom=0.26, wspace=0.18)
    ax, ram = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    index = {m["slug"]: i for i, m in enumerate(spec.models)}
    width = 0.8 / max(len(spec.levels), 1)
    for b in spec.bars:
        k = spec.levels.index(b["level"]) if b["level"] in spec.levels else 0
        x = index[b["model"]] + (k - (len(spec.levels) - 1) / 2) * width
        colour = LEVEL_COLOURS.get(b["level"], "grey")
        if b["note"]:
            for a in (ax, ram):
                a.text(x, 0.02, b["note"], transform=a.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
                       fontsize=7, color="red" if b["note"] != "skipped" else "grey")
            continue
        sleep, wake = b["sleep"] or 0, b["wake"] or 0
        ax.bar(x, sleep, width * 0.9, color=_light(colour), edgecolor="black", linewidth=0.5)
        ax.bar(x, wake, width * 0.9, bottom=sleep, color=colour, edgecolor="black", linewidth=0.5,
               yerr=[[max(0, sleep + wake - b["switch_min"])], [max(0, b["switch_max"] - sleep - wake)]], capsize=2)
        if b["bound_s"]:
            ax.plot([x - width * 0.45, x + width * 0.45], [b["bound_s"]] * 2, color="black", linewidth=2)
        if b["ram_gib"] is not None:
            ram.bar(x, b["ram_gib"], width * 0.9, color=colour, edgecolor="black", linewidth=0.5)
    labels = [f"{m['slug']}\n{m['size']}" for m in spec.models]
    for a, title, unit in ((ax, "Switch = sleep (light) + wake (dark), rounds 1-3", "seconds (linear, from 0)"),
                           (ram, "Host RAM held while asleep (first sleep's RSS growth)", "GiB")):
        a.set_xticks(range(len(labels)))
        a.set_xticklabels(labels, fontsize=8)
        a.set_xlim(-0.5, len(labels) - 0.5)
        a.set_ylim(bottom=0)
        a.set_ylabel(unit)
        a.set_title(title, fontsize=10, y=1.0)
        a.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor=LEVEL_COLOURS.get(level, "grey"), edgecolor="black", label=f"level {level}")
               for level in spec.levels]
    handles.append(Line2D([], [], color="black", linewidth=2, label="bandwidth bound: GiB moved / host->GPU GB/s"))
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    _frame(fig, spec.title, spec.provenance + spec.summary
           + ["bars: medians; whiskers: min..max of the switch over rounds 1-3 x repeats"])
    return fig


# ---------------------------------------------------------------- files

def _frame(fig, title, lines):
    height = fig.get_figheight()
    fig.text(0.01, 1 - 0.12 / height, title, ha="left", va="top", fontsize=13, fontweight="bold")
    fig.text(0.01, 0.08 / height, "\n".join(lines), ha="left", va="bottom", fontsize=7.5, color="#333333",
             linespacing=1.5)


def save(fig, stem, formats=FORMATS):
    """<stem>.<format> for each format (PNG at DPI, SVG with stable ids); returns the paths. The files are
    written beside their names and moved into place together, so a full disk leaves no half figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.{fmt}" for fmt in formats]
    with matplotlib.rc_context(SVG_RC), ExitStack() as files:
        for path, fmt in zip(paths, formats):
            fig.savefig(files.enter_context(layout.replacing(path)), format=fmt, **SAVE_OPTIONS[fmt])
    return paths


SAVE_OPTIONS = {"png": {"dpi": DPI, "metadata": PNG_METADATA}, "svg": {"metadata": SVG_METADATA}}


# ---------------------------------------------------------------- the figures of a run

@dataclass(frozen=True)
class Plot:
    """One figure of a run: its file name (no extension) and its spec (BarsSpec, TimelineSpec, ...)."""
    stem: str                   # table1-bars, table1-timeline, memory-<unit>, loads, guide
    spec: BarsSpec | TimelineSpec | MemorySpec | LoadsSpec | GuideSpec

    @property
    def kind(self):
        """bars, timeline, memory, loads or guide: a key of BUILDERS."""
        return self.spec.kind

    def figure(self):
        return BUILDERS[self.kind](self.spec)

    @property
    def digest(self):
        """sha256 of what decides the picture, matplotlib aside: kind, spec and this module's source."""
        return hashlib.sha256(json.dumps([self.kind, asdict(self.spec), code_digest()], sort_keys=True).encode()
                              ).hexdigest()


@cache
def code_digest():
    """sha256 of kit/plot.py: a change of the drawing code makes every stored figure stale."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


BUILDERS = {"bars": bars_figure, "timeline": timeline_figure, "memory": memory_figure, "loads": loads_figure,
            "guide": guide_figure}


def _numbers(numbers):
    return sorted(set(int(x) for x in numbers))


def _units(run, numbers):
    return list(dict.fromkeys(run.unit_for(n, a) for n in _numbers(numbers) for a in scenarios.TABLES[n].arms))


def plots(run, numbers, built=None):
    """Every figure of these tables of a run, in order: table<N>-bars and table<N>-timeline per table,
    memory-<unit> per unit, loads (the run's load breakdown), guide (a sweep's). built: {number: build_table}
    already made."""
    out = []
    for n in _numbers(numbers):
        table = (built or {}).get(n) or results.build_table(run, n)
        out += [Plot(f"table{n}-bars", bars_spec(run, n, table)),
                Plot(f"table{n}-timeline", timeline_spec(run, n, table))]
    specs = {unit: memory_spec(run, unit) for unit in dict.fromkeys([*run.units, *_units(run, numbers)])}
    limits = memory_limits([specs[unit] for unit in run.units])    # the same whichever tables
    out += [Plot(f"memory-{unit}", replace(specs[unit], limits=limits)) for unit in _units(run, numbers)]
    out.append(Plot("loads", loads_spec(run)))
    if guides.is_sweep(run):
        out.append(Plot("guide", guide_spec(run)))
    return out


def figure_stems(run, numbers):
    """The figures' names (no extension), in the order of plots."""
    return [p.stem for p in plots(run, numbers)]


def plot_run(run, numbers, out=None):
    """Write every figure of these tables under out (default <run>/figures/), PNG and SVG, and each one's digest
    in INDEX there, after its files (an interrupted plot leaves no entry for a half-replaced figure); return the
    paths."""
    folder = Path(out) if out else layout.RunDir(run.source).figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    todo = plots(run, numbers)
    index = {stem: digest for stem, digest in read_index(folder).items() if stem not in {p.stem for p in todo}}
    write_index(folder, index)
    paths = []
    for p in todo:
        paths += save(p.figure(), folder / p.stem)
        index[p.stem] = p.digest
        write_index(folder, index)
    return paths


INDEX = "index.json"


def read_index(folder, any_matplotlib=False):
    """{stem: digest} of the figures in a folder, as plot_run recorded them; {} when there is no index or (unless
    any_matplotlib) it was written with another matplotlib version, whose files may differ."""
    try:
        doc = json.loads((Path(folder) / INDEX).read_text(encoding="utf-8"))
        if any_matplotlib or doc.get("matplotlib") == matplotlib.__version__:
            return {str(stem): str(digest) for stem, digest in doc["figures"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {}


def write_index(folder, index):
    doc = {"matplotlib": matplotlib.__version__, "figures": dict(sorted(index.items()))}
    with layout.replacing(Path(folder) / INDEX) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def expected_figures(run, numbers):
    """File names plot_run writes for these tables of a run."""
    return [f"{stem}.{fmt}" for stem in figure_stems(run, numbers) for fmt in FORMATS]
