"""The bar charts of a run: a table's bars (switch, prompt, total), the load breakdown and a sweep's guide,
each drawn from its spec (kit.plot.specs) as a matplotlib Figure.

- Bars are drawn with the table's published references beside them (hatched), whiskers min..max.
- The load breakdown stacks each row's part medians; the guide stacks sleep under wake per level against the
  bandwidth bound.
"""
import math

from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.textpath import TextPath

from kit.plot.style import ARM_COLOURS, arm_colour, footer, frame, lighter

PUBLISHED_HATCH = ["///", "xxx", "..."]


# ---------------------------------------------------------------- bars

def _draw_bars(ax, width, style, placed):
    """One source's bars of a panel in one call (fewer artists, the same picture): median, whiskers min..max,
    each labelled with its median. placed: [(x, bar)]."""
    colours = [arm_colour(bar["unit"]) for _, bar in placed]
    ax.bar([x for x, _ in placed], [bar["median"] for _, bar in placed], width * 0.92,
           yerr=[[bar["median"] - bar["min"] for _, bar in placed], [bar["max"] - bar["median"] for _, bar in placed]],
           capsize=2, color=colours if style is None else [lighter(c) for c in colours], hatch=style or "",
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
    arms = [Patch(facecolor=arm_colour(a["unit"]), edgecolor="black",
                  label=f"{a['unit']}: {a['title']}" + (f"  [{a['note'][:70]}]" if a["note"] else ""))
            for a in spec.arms]
    sources = [Patch(facecolor="grey" if styles[s["key"]] is None else lighter("grey"), hatch=styles[s["key"]] or "",
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
    frame(fig, spec.title, spec.provenance + [
        f"bars: median; whiskers: min..max. Measured: rounds 1-3 x {reps} repeat(s) (the table's cells; "
        "a failed arm has no bars, as in the table). Published: the blog figure's 3 rounds (the blog drew means)."])
    return fig


# ---------------------------------------------------------------- load breakdown

PART_COLOURS = {"weights": "#4c72b0", "compile": "#c44e52", "graphs": "#8172b3", "engine_rest": "#dd8452",
                "startup": "#bbbbbb"}


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
    frame(fig, spec.title, spec.provenance + [
        "segments: the medians of each part over a row's loads (one row per unit, model and compile-cache state: "
        "miss = compiled, hit = loaded from the cache); start-up = the load less weights and engine init"])
    return fig


# ---------------------------------------------------------------- guide (kit sweep)

LEVEL_COLOURS = {1: ARM_COLOURS["l1"], 2: ARM_COLOURS["l2"]}


NAME_PT = 8          # the model names under the guide's bars


def _name_layout(models, fig, axes):
    """Per panel, its model names as tick labels and their angle: upright on two lines (name, size) where the
    widest fits a model's share of the panel, else on one line, slanted just enough that neighbours stay
    apart; and the inches the names need below the panels."""
    upright = [f"{m['slug']}\n{m['size']}" for m in models]
    flat = [f"{m['slug']} {m['size']}" for m in models]
    line, upright_width, flat_width = NAME_PT * 1.25 / 72, _widest(upright), _widest(flat)
    layout, need = [], 2 * line
    for a in axes:
        slot = a.get_position().width * fig.get_figwidth() / max(len(models), 1)
        if upright_width <= 0.9 * slot:
            layout.append((upright, 0))
            continue
        angle = next((d for d in (30, 45, 60) if slot * math.sin(math.radians(d)) >= 1.2 * line), 90)
        layout.append((flat, angle))
        r = math.radians(angle)
        need = max(need, flat_width * math.sin(r) + line * math.cos(r))
    return layout, 0.35 + need


def _widest(labels):
    return max((TextPath((0, 0), part, size=NAME_PT).get_extents().width / 72
                for label in labels for part in label.split("\n")), default=0)


def guide_figure(spec):
    """Left: each model's switch per level, the later cycles' sleep (light) under wake (dark), whiskers min..max
    of their switch, a diamond at the first switch, a black tick at the bandwidth bound. Right: host RAM held
    while asleep."""
    lines, below = footer(spec.provenance + spec.summary
                          + ["bars: medians of the later cycles; whiskers: their min..max (rounds 2-3 x repeats); "
                             "diamonds: the first switch (median over repeats)"])
    fig = Figure(figsize=(14, 6.5))
    grid = GridSpec(1, 2, figure=fig, width_ratios=[2.2, 1], left=0.06, right=0.99, wspace=0.18)
    ax, ram = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    names_layout, names = _name_layout(spec.models, fig, (ax, ram))
    height = 4.85 + names + below       # title and plot, the model names, the provenance (a grown run has more)
    fig.set_size_inches(14, height)
    grid.update(top=1 - 1.05 / height, bottom=(names + below) / height)
    for a in (ax, ram):
        a.set_position(a.get_subplotspec().get_position(fig))
    index = {m["slug"]: i for i, m in enumerate(spec.models)}
    width = 0.8 / max(len(spec.levels), 1)
    suspect_tops = []
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
        ax.bar(x, sleep, width * 0.9, color=lighter(colour), edgecolor="black", linewidth=0.5)
        ax.bar(x, wake, width * 0.9, bottom=sleep, color=colour, edgecolor="black", linewidth=0.5,
               yerr=[[max(0, sleep + wake - b["switch_min"])], [max(0, b["switch_max"] - sleep - wake)]], capsize=2)
        if b["suspect"]:     # numbers drawn, but a sleep check failed: the guide's text says SUSPECT too
            top = max(sleep + wake, b["switch_max"] or 0)         # above the whisker, which would strike it through
            ax.annotate("SUSPECT", (x, top), xytext=(0, 3), textcoords="offset points", rotation=90, ha="center",
                        va="bottom", fontsize=7, color="red")
            suspect_tops.append(top)
        if b["first_switch"] is not None:
            ax.plot(x, b["first_switch"], marker="D", markersize=6, color="white", markeredgecolor="black")
        if b["bound_s"]:
            ax.plot([x - width * 0.45, x + width * 0.45], [b["bound_s"]] * 2, color="black", linewidth=2)
        if b["ram_gib"] is not None:
            ram.bar(x, b["ram_gib"], width * 0.9, color=colour, edgecolor="black", linewidth=0.5)
    if suspect_tops:      # the marks inside the axes, below their title (after every bar has scaled them)
        ax.set_ylim(top=max(ax.get_ylim()[1], 1.25 * max(suspect_tops)))
    for a, (labels, angle), title, unit in (
            (ax, names_layout[0], "Switch = sleep (light) + wake (dark), later cycles (rounds 2-3)", "seconds (linear, from 0)"),
            (ram, names_layout[1], "Host RAM held while asleep (first sleep's RSS growth)", "GiB")):
        a.set_xticks(range(len(labels)))
        a.set_xticklabels(labels, fontsize=NAME_PT, rotation=angle, ha="right" if angle else "center",
                          rotation_mode="anchor" if angle else "default")
        a.set_xlim(-0.5, len(labels) - 0.5)
        a.set_ylim(bottom=0)
        a.set_ylabel(unit)
        a.set_title(title, fontsize=10, y=1.0)
        a.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor=LEVEL_COLOURS.get(level, "grey"), edgecolor="black", label=f"level {level}")
               for level in spec.levels]
    handles.append(Line2D([], [], color="white", marker="D", markeredgecolor="black", linestyle="none",
                          label="first switch (round 1)"))
    handles.append(Line2D([], [], color="black", linewidth=2, label="bandwidth bound: GiB moved / host->GPU GB/s"))
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    frame(fig, spec.title, lines)
    return fig

