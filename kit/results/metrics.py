"""Numbers from events: which events a metric is taken from, their statistics, and the memory metrics.

Pure functions over event dicts (measured ones, or the published series in the same vocabulary), and the
two records a table is made of: Cell (one number's statistics) and CacheCounts (the compile cache of loads).
"""
import re
import statistics
from dataclasses import dataclass

from kit.results.records import Record

# (metric, label, unit); switch parts ("part:<name>") are inserted after "switch".
METRICS = [("load", "load", "s"), ("warmup", "warm-up", "s"), ("switch", "wake / switch", "s"),
           ("prompt", "prompt", "s"), ("ttft", "TTFT", "s"), ("output_tokens", "output tokens", "tok"),
           ("sleep", "sleep", "s"), ("sleep_setup", "sleep (set-up)", "s"), ("stop", "stop", "s"),
           ("total", "total", "s")]
MEMORY = [("gpu_freed_by_sleep", "GPU MiB freed by sleep", "MiB"),
          ("gpu_taken_by_wake", "GPU MiB taken back by wake", "MiB"),
          ("rss_first_sleep", "host RSS MiB added by first sleep", "MiB"),
          ("rss_peak", "peak host RSS MiB", "MiB"),
          ("wake_gbps", "wake GB/s (backed-up bytes / wake s)", "GB/s"),
          ("h2d_gbps", "host->GPU GB/s (measured on the arm's GPU)", "GB/s"),
          ("wake_vs_h2d", "wake GB/s / host->GPU GB/s", "ratio")]
PART_ORDER = ("wake_up", "reload_weights", "reset_prefix_cache", "warmup")
MIXED = "mixed"      # cache_verdict's state of loads in different compile-cache states: their numbers are not comparable


class CacheVerdict:
    """What a row with a compile-cache verdict (cache_state, reason) answers: may its numbers be set side by side?"""
    @property
    def not_comparable(self):
        """The loads behind its numbers were in different compile-cache states: no ratio (reason says why)."""
        return self.cache_state == MIXED


def num(x):
    return round(float(x), 6)


@dataclass(frozen=True)
class Cell(Record):
    """One number of a table over rounds and repeats: min, median, max, n, and cv (the coefficient of
    variation) from two values on."""
    min: float
    median: float
    max: float
    n: int
    cv: float | None = None

    def to_json(self):
        out = {"min": self.min, "median": self.median, "max": self.max, "n": self.n}
        return out | ({"cv": self.cv} if self.cv is not None else {})


def stats(values):
    """The Cell of these values (None values left out), or None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    mean = statistics.fmean(values)
    cv = num(statistics.stdev(values) / mean) if len(values) >= 2 and mean else None
    return Cell(num(min(values)), num(statistics.median(values)), num(max(values)), len(values), cv)


def ratio(numerator, denominator):
    if not numerator or not denominator or not denominator.median:
        return None
    return num(numerator.median / denominator.median)


def overlap(a, b):
    """Do two cells' min..max ranges overlap? None unless both have two values or more (a single
    value says nothing about spread)."""
    if not a or not b or a.n < 2 or b.n < 2:
        return None
    return a.min <= b.max and b.min <= a.max


def select(events, metric):
    """The events one metric is taken from (all models). The switch of a no-sleep arm is a restart: its load."""
    switch = "wake" if any(e["kind"] == "wake" for e in events) else "load"
    rules = {"load": ("load", None), "warmup": ("warmup", 0), "switch": (switch, 1), "prompt": ("prompt", 1),
             "ttft": ("prompt", 1), "output_tokens": ("prompt", 1), "sleep": ("sleep", 1),
             "sleep_setup": ("sleep", 0), "stop": ("stop", None), "total": ("total", None)}
    kind, rounds = rules["switch" if metric.startswith("part:") else metric]
    return [e for e in events if e["kind"] == kind
            and (rounds is None or (e["round"] == 0 if rounds == 0 else e["round"] >= 1))]


def values(events, metric, model):
    chosen = [e for e in select(events, metric) if metric == "total" or e["model"] == model]
    if metric.startswith("part:"):
        return [(e.get("parts") or {}).get(metric[5:]) for e in chosen]
    key = {"ttft": "ttft_s", "output_tokens": "output_tokens"}.get(metric, "duration_s")
    return [e.get(key) for e in chosen]


# -- compile-cache state of the loads behind a number ------------------------------------------------
def loads_behind(events, metric, model):
    """The load events a metric's values come from or include: a load, a restart (the switch of an arm
    without sleep), a total (every load of the arm). Wakes, sleeps and prompts involve no load."""
    if metric == "total":
        return [e for e in events if e["kind"] == "load"]
    if metric == "load" or metric == "switch" or metric.startswith("part:"):
        return [e for e in select(events, metric) if e["kind"] == "load" and e["model"] == model]
    return []


@dataclass(frozen=True)
class CacheCounts(Record):
    """What load events say of the compile cache: n loads, of which compiled (the cache missed: the server
    compiled the model), cached (it hit), unknown (the event does not say: no breakdown, i.e. events before
    schema 3, or a log the parser could not read)."""
    n: int
    compiled: int
    cached: int
    unknown: int


def cache_counts(loads):
    said = [(e.get("breakdown") or {}).get("compile_cache") for e in loads]
    return CacheCounts(len(said), said.count("miss"), said.count("hit"), sum(s not in ("hit", "miss") for s in said))


def cache_verdict(counts):
    """counts: {side: cache_counts} of the loads behind two numbers set side by side (sides without loads
    left out). -> (state, reason): state None (no loads), "hit" / "miss" (every load alike: comparable),
    "mixed" (reason: "not comparable: ..."), or "unknown" (reason: "cache state unknown: ...")."""
    counts = {side: c for side, c in counts.items() if c.n}
    if not counts:
        return None, None
    if any(c.compiled for c in counts.values()) and any(c.cached for c in counts.values()):
        return MIXED, "not comparable: " + _listing(counts, "compiled")
    if any(c.unknown for c in counts.values()):
        return "unknown", "cache state unknown for " + _listing({s: c for s, c in counts.items() if c.unknown},
                                                                "unknown")
    return ("miss" if any(c.compiled for c in counts.values()) else "hit"), None


def _listing(counts, key):
    """'l1-fp8 compiled 2 of 2 loads, l1 0 of 2' (key compiled); 'l1 2 of 2 loads, nosleep 6 of 6' (unknown)."""
    said = [f"{side} {getattr(c, key)} of {c.n}" for side, c in counts.items()]
    if key == "compiled":
        said[0] = said[0].replace(" ", " compiled ", 1)
    said[0] += " loads"
    return ", ".join(said)


def part_names(event_lists):
    """Names of a switch's timed parts when some arm's switch has several (level 2), in switch order."""
    switches = [e for evs in event_lists for e in select(evs, "switch")]
    if not any(len(e.get("parts") or {}) > 1 for e in switches):
        return []
    names = {p for e in switches for p in e.get("parts") or {}}
    return [p for p in PART_ORDER if p in names] + sorted(names - set(PART_ORDER))


def metric_list(event_lists):
    out = []
    for metric, label, unit in METRICS:
        out.append((metric, label, unit))
        if metric == "switch":
            out += [(f"part:{p}", f"switch part: {p}", "s") for p in part_names(event_lists)]
    return out


# -- memory ----------------------------------------------------------------------------------------
def _diffs(events, kind, sign):
    return [sign * (e["gpu_mib_before"] - e["gpu_mib_after"]) for e in events if e["kind"] == kind
            and e.get("gpu_mib_before") is not None and e.get("gpu_mib_after") is not None]


def first_sleep(events, arm_level):
    """(RSS MiB added, level, MiB the engine backed up) of a server's first sleep, or None."""
    sleep = next((e for e in events if e["kind"] == "sleep"), None)
    if not sleep or sleep.get("rss_mib_before") is None or sleep.get("rss_mib_after") is None:
        return None
    return sleep["rss_mib_after"] - sleep["rss_mib_before"], sleep.get("level") or arm_level, backed_up_mib(sleep)


def backed_up_mib(sleep):
    """What the engine said it copied to the CPU, from the kit's engine_log check (kit/workload/sleepcheck.py)."""
    for check in sleep.get("checks") or []:
        found = re.fullmatch(r"engine: ([\d.]+) GiB backed up in CPU", check.get("detail") or "")
        if check["check"] == "engine_log" and found:
            return float(found.group(1)) * 1024
    return None


def wake_gbps(events, first, arm_level):
    """Effective wake bandwidth: bytes moved back / wake seconds. The bytes are what the engine backed up
    on the first level-1 sleep (its log line); without that line, the host RSS that sleep added."""
    if not first or first[1] != 1:
        return []
    mib = first[2] if first[2] else first[0]
    if mib <= 0:
        return []
    return [mib * 2**20 / 1e9 / e["duration_s"] for e in select(events, "switch")
            if e["kind"] == "wake" and (e.get("level") or arm_level) == 1 and e["duration_s"] > 0]


def memory_values(repeats, model, arm_level, h2d_of):
    """{memory metric: [values]} of one model over the usable repeats; h2d_of(repeat) -> GB/s or None."""
    vals = {key: [] for key, _, _ in MEMORY}
    for rep in repeats:
        mine = [e for e in rep.events if e["model"] == model]
        vals["gpu_freed_by_sleep"] += _diffs(mine, "sleep", 1)
        vals["gpu_taken_by_wake"] += _diffs(mine, "wake", -1)
        first = first_sleep(mine, arm_level)
        vals["rss_first_sleep"] += [first[0]] if first else []
        rss = [e.get(k) for e in mine for k in ("rss_mib_before", "rss_mib_after") if e.get(k) is not None]
        vals["rss_peak"] += [max(rss)] if rss else []
        gbps = wake_gbps(mine, first, arm_level)
        vals["wake_gbps"] += gbps
        h2d = h2d_of(rep)
        vals["h2d_gbps"] += [h2d]
        vals["wake_vs_h2d"] += [g / h2d for g in gbps] if h2d else []
    return vals
