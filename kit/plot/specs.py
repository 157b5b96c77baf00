"""The specs of a run's figures: what each figure shows, as plain data (no pixels, no matplotlib).

A spec function turns a run (kit.results) into a spec, a frozen dataclass (one class per kind: BarsSpec,
TimelineSpec, MemorySpec, LoadsSpec, GuideSpec); kit.plot.charts and kit.plot.traces draw them.

- Bars are the table's numbers: the median and min..max of kit.results.build_table's cells, so a figure
  and its table never disagree; the table's published references are beside them.
- Every spec carries its provenance (run id, GPU, vLLM, models or twins, protocol, output length,
  repeats, compile cache), and names each arm that failed, did not run or is unfinished.
"""
from dataclasses import dataclass
from typing import ClassVar

from kit import results
from kit.results import guide as guides
from kit.results import loads as load_table
from kit.results import published, render, tables
from kit.workload import scenarios
from kit.workload.steps import base_arm

STATE_NOTE = {"failed": "FAILED", "not run": "not run", "unfinished": "unfinished (not run yet)", "suspect": "SUSPECT"}
PANELS = [("switch", "Switch, rounds 1-3: wake (sleep) or restart load (no sleep)", ("A", "B")),
          ("prompt", "Prompt, rounds 1-3", ("A", "B")),
          ("total", "Total time of the arm\n(published: no set-up sleeps, no stops)", (None,))]


# ---------------------------------------------------------------- reading and text

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


def memory_limits(specs):
    """{"gpu": MiB, "rss": MiB}: the tops of the axes every memory figure of a run shares (zero-based), so a
    +10 MiB level-2 sleep in one figure looks as small as it is beside a +8 GiB level-1 sleep in another."""
    tops = {}
    for key in ("gpu", "rss"):
        values = [p[f"{key}_{w}"] for spec in specs for p in spec.points for w in ("before", "after")]
        tops[key] = max([v for v in values if v is not None] + [1]) * 1.45
    return tops


# ---------------------------------------------------------------- load breakdown

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


# ---------------------------------------------------------------- guide (kit sweep)

@dataclass(frozen=True)
class GuideSpec:
    kind: ClassVar[str] = "guide"
    title: str
    provenance: list
    levels: list
    models: list        # [{slug, size}]
    bars: list          # [{model, level, first_switch, sleep, wake, switch_min, switch_max, bound_s, ram_gib, note,
                        #   suspect}]
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
        bars.append({"model": r["slug"], "level": r["level"], "first_switch": med("first_switch"),
                     "sleep": med("sleep"), "wake": med("wake"),
                     "switch_min": r["switch"]["min"] if r["switch"] else None,
                     "switch_max": r["switch"]["max"] if r["switch"] else None,
                     "bound_s": bound, "ram_gib": med("ram_held_gib"),
                     "note": None if r["switch"] else (r["state"] if r["state"] != "skipped" else "skipped"),
                     "suspect": r["state"] == "suspect"})
    return GuideSpec(title=guides.header(typed)[0], provenance=guides.header(typed)[1:], levels=guide["run"]["levels"],
                     models=[{"slug": m, "size": size} for m, size in models], bars=bars,
                     summary=guides.summary_lines(typed))

