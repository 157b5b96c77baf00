"""The event traces of a run: a table's timeline (every event of one repeat per arm, each switch zoomed) and
a unit's memory (GPU and host RSS before and after every event), each drawn from its spec (kit.plot.specs) as a
matplotlib Figure.

- The timeline's x axis ends where the data ends; the published series are drawn beside, lighter.
- Memory axes start at zero and each sleep and wake is annotated with its change in MiB/GiB.
"""
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from kit.plot.style import KIND_COLOURS, frame, lighter

KIND_LETTER = {"load": "L", "warmup": "W", "wake": "w", "prompt": "P", "sleep": "S", "stop": "x"}
MODEL_HATCH = {"A": "", "B": "//", None: ""}
NAN = float("nan")


# ---------------------------------------------------------------- timeline

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
            faces.append(lighter(colour, 0.5) if light else colour)
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
    handles += [Patch(facecolor=lighter("grey", 0.5), label="lighter, thinner: published")]
    if any(not s["ok"] for r in spec.rows for s in r["segments"]):
        handles.append(Patch(facecolor="white", edgecolor="red", linewidth=2, label="failed event"))
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.99, 1 - 0.25 / height), ncol=5, fontsize=8,
               frameon=False)
    frame(fig, spec.title, spec.provenance + [
        "published: " + "; ".join(spec.published) + " - the blog's timelines have no set-up sleeps or stops"])
    return fig


# ---------------------------------------------------------------- memory

def fmt_mib(delta):
    """A memory change as people read it: '+10 MiB', '-22.6 GiB'."""
    if delta is None:
        return ""
    if abs(delta) < 1024:
        return f"{delta:+.0f} MiB"
    return f"{delta / 1024:+.1f} GiB"


def _annotate(ax, x, y, delta, kind, bold):
    ax.annotate(fmt_mib(delta), (x, y), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                rotation=90, fontsize=6.5, color=KIND_COLOURS.get(kind, "black"),
                fontweight="bold" if bold else "normal")


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
    frame(fig, f"Memory of {spec.unit}: {spec.title}{rep} - before and after each event", spec.provenance
           + ["o-o = before and after an event; labels = the change (MiB below 1 GiB, else GiB)"
              + ("; every memory figure of this run has these axes" if limits else "")])
    return fig

