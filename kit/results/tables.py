"""One kit table (1-5) of a run as a Table record: header facts, the two arms' states, rows of metrics per
model (cells: min / median / max / n, spread), memory rows, and the published numbers beside. Its to_json()
is tables/table<N>.json.

    table = build_table(load_run(run_dir), 1)

States of an arm: ok; suspect (a sleep check failed); failed (a repeat failed); unfinished (part of an
interrupted run, not run yet); not run (not part of this run).

A row whose numbers rest on loads (a load, a restart, a total) carries the compile-cache state of those
loads, from the load events: cache {arm: CacheCounts}, cache_state hit | miss | mixed | unknown, and reason.
Where the loads were not all in one state (mixed) the row has no ratio (not_comparable), and reason says why.
"""
from dataclasses import dataclass, field

from kit.results import metrics, published
from kit.results.metrics import CacheCounts, Cell
from kit.results.records import Record
from kit.workload import scenarios
from kit.workload.steps import base_arm

SCHEMA = 1
FIXED_NOTE = "output length fixed at max_tokens (ignore_eos)"
FREE_NOTE = "output length not fixed: a prompt stops at EOS or max_tokens (see the output tokens row)"
# What kit compare sets side by side: a difference in any of these is printed with the ratios (runtime:
# a container or the host; at_once: jobs that shared the machine, one per GPU).
FACT_KEYS = ("gpu", "vllm", "torch", "cuda", "driver", "models", "protocol", "fixed_output", "cache",
             "repeat", "runtime", "at_once", "server_args")
NO_NUMBERS = ("failed", "not run", "unfinished")
CACHE_NOTE = ("a ratio of loads, restarts (the no-sleep switch) or totals is given where every load behind it found "
              "the compiled model in the compile cache, or every one compiled it (the load events say which); "
              "otherwise 'not comparable'. Wakes, sleeps and prompts involve no load")


@dataclass(frozen=True)
class FailedCheck(Record):
    """A sleep check that failed, and on which event."""
    repeat: int
    seq: int
    kind: str
    model: str | None
    round: int
    check: str
    detail: str | None


@dataclass(frozen=True)
class SkippedCheck(Record):
    count: int
    reason: str


@dataclass(frozen=True)
class ArmState(Record):
    """How one arm of a table ran: state (ok, suspect, failed, unfinished, not run), its repeats, errors and
    sleep checks, and what its load events say of the compile cache (loads)."""
    arm: str
    unit: str
    role: str
    title: str
    state: str
    repeats: int = 0
    errors: tuple[str, ...] = ()
    checks_passed: int = 0
    failed_checks: tuple[FailedCheck, ...] = ()
    skipped_checks: dict[str, SkippedCheck] = field(default_factory=dict)
    loads: CacheCounts | None = None

    @property
    def has_numbers(self):
        return self.state not in NO_NUMBERS


@dataclass(frozen=True)
class PublishedCells(Record):
    """A published source's cells of one row, per arm, and their ratio."""
    arms: dict[str, Cell | None]
    ratio: float | None


@dataclass(frozen=True)
class Row(Record, metrics.CacheVerdict):
    """One metric of one model (model None: both, the total): a cell per arm, the control/test ratio of their
    medians, whether their ranges overlap, the published sources' cells, and the compile cache behind them."""
    metric: str
    label: str
    unit: str
    model: str | None
    arms: dict[str, Cell | None]
    ratio: float | None
    overlap: bool | None
    published: tuple[PublishedCells, ...] = ()
    cache: dict[str, CacheCounts] = field(default_factory=dict)
    cache_state: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class MemoryRow(Record):
    metric: str
    label: str
    unit: str
    model: str
    arms: dict[str, Cell | None]


@dataclass(frozen=True)
class Source(Record):
    """A published source beside a table: blog figure, GPU, vLLM version, label, the models it ran."""
    figure: str
    gpu: str
    vllm: str
    label: str
    models: dict[str, str]

    @classmethod
    def of(cls, ref):
        """The source of a published reference (published.references)."""
        return cls(ref["figure"], ref["gpu"], ref["vllm"], ref["label"], ref["models"])


@dataclass(frozen=True)
class ModelFacts(Record):
    """A model of a run: its name and, for a shape twin (random weights), the twin's name."""
    name: str | None
    twin: str | None


@dataclass(frozen=True)
class RunFacts(Record):
    """What identifies a run (run_facts): GPU, versions, models, protocol, options; a table's header.
    at_once: the most jobs that ran at once (0: no job times); devices: the distinct GPUs its jobs ran on;
    stand_in: the server that stood in for vLLM (no result); server_args: per unit, its server's arguments."""
    run_id: str
    gpu: str | None
    vllm: str | None
    torch: str | None
    cuda: str | None
    driver: str | None
    models: dict[str, ModelFacts]
    protocol: str
    fixed_output: bool
    cache: str
    repeat: int
    runtime: str
    complete: bool | None
    at_once: int
    devices: int
    stand_in: str | None
    server_args: dict[str, list | None]


@dataclass(frozen=True)
class PublishedFacts(Record):
    """The facts a published source states (compare.published_table): its JSON and kit compare's differences
    hold only these."""
    run_id: str
    gpu: str
    vllm: str
    models: dict[str, ModelFacts]
    fixed_output: bool
    cache: str
    protocol: str
    devices = 1           # not a field: each source's figure is of one GPU


@dataclass(frozen=True)
class Table(Record):
    """One kit table of a run (or of a published source: compare.published_table). run: the header facts
    (run_facts); ratio: "<control>/<test>", the quotient the rows' ratios are."""
    number: int
    title: str
    run: RunFacts | PublishedFacts
    arms: tuple[ArmState, ...]
    rows: tuple[Row, ...]
    ratio: str = ""
    script: str | None = None
    memory: tuple[MemoryRow, ...] = ()
    published: tuple[Source, ...] = ()
    notes: tuple[str, ...] = ()
    schema: int = SCHEMA

    def to_json(self):
        out = super().to_json()
        out["table"] = out.pop("number")
        return out

    def row(self, metric, model):
        """The row of this metric and model, or None."""
        return next((r for r in self.rows if (r.metric, r.model) == (metric, model)), None)


def env_get(env, key):
    for k in (f"{key}_version", key):
        if env.get(k) is not None:
            return env[k]
    return None


def gpu_name(env):
    names = [g.get("name") if isinstance(g, dict) else str(g) for g in env.get("gpus") or []]
    if not names:
        return env.get("gpu_name") or env.get("gpu")
    if len(set(names)) == 1:
        return names[0] if len(names) == 1 else f"{len(names)}x {names[0]}"
    return " + ".join(sorted(set(names)))


def most_at_once(jobs):
    """The most jobs of a run that ran at the same moment, from the manifest's start and end stamps."""
    marks = sorted([(j["started"], 1) for j in jobs if j.get("started") and j.get("ended")]
                   + [(j["ended"], -1) for j in jobs if j.get("started") and j.get("ended")])
    running = most = 0
    for _, step in marks:          # an end sorts before a start at the same stamp
        running += step
        most = max(most, running)
    return most


def devices(jobs):
    """The distinct (host, GPU uuid) pairs a run's jobs ran on (a resumed run may have moved)."""
    return sorted({(j.get("host") or "?", (j.get("gpu") or {}).get("uuid") or "?") for j in jobs})


def run_facts(run, arms=None):
    """What identifies a run: GPU, versions, models, protocol, options (headers, compare, figures). arms: the
    units whose server arguments it holds (default: every unit's)."""
    m, o = run.manifest, run.options
    env = m.get("environment") or next((r.env for reps in run.units.values() for r in reps if r.env), {})
    models = {k: ModelFacts(v.get("name"), v.get("twin")) for k, v in sorted((m.get("models") or {}).items())}
    server_args = m.get("server_args") or {}
    jobs = m.get("jobs") or []
    return RunFacts(run.run_id, gpu_name(env), env_get(env, "vllm"), env_get(env, "torch"), env_get(env, "cuda"),
                    env_get(env, "driver"), models, o.protocol, o.fixed_output, o.cache, o.repeat, o.runtime,
                    m.get("complete"), most_at_once(jobs), len(devices(jobs)), m.get("stand_in"),
                    {a: server_args.get(a) for a in (arms or sorted(server_args))})


def _checks(reps):
    """(passed, failed [FailedCheck], skipped {check: SkippedCheck}) of the sleep checks of these repeats."""
    passed, failed, skipped = 0, [], {}
    for rep in reps:
        for e in rep.events:
            for c in e.get("checks") or []:
                if c["ok"] is None:
                    skipped.setdefault(c["check"], [0, c.get("detail") or ""])[0] += 1
                elif c["ok"]:
                    passed += 1
                else:
                    failed.append(FailedCheck(rep.repeat, e["seq"], e["kind"], e["model"], e["round"], c["check"],
                                              c.get("detail")))
    return passed, tuple(failed), {k: SkippedCheck(n, why) for k, (n, why) in sorted(skipped.items())}


def arm_state(run, unit, role):
    reps = run.units.get(unit)
    arm = base_arm(unit)
    title = scenarios.ARMS[arm].title if arm in scenarios.ARMS else arm
    state = lambda label, **more: ArmState(arm, unit, role, title, label, repeats=len(reps or []), **more)
    if reps is None:
        return state("not run")
    errors = tuple(f"r{r.repeat}: {r.error}" for r in reps if not r.ok and not r.pending)
    if not errors and any(r.pending for r in reps):
        return state("unfinished", errors=tuple(f"r{r.repeat}: {r.error}" for r in reps if r.pending))
    passed, failed, skipped = _checks([r for r in reps if r.ok])
    label = "failed" if errors else "suspect" if failed else "ok"
    loads = metrics.cache_counts([e for r in reps if r.ok for e in r.events if e["kind"] == "load"])
    return state(label, errors=errors, checks_passed=passed, failed_checks=failed, skipped_checks=skipped, loads=loads)


def rows(table_arms, sources, refs):
    """sources: arm -> event list (None: no numbers). One Row per (metric, model) with any number."""
    lists = [s for s in sources.values() if s] + [r["arms"][a]["events"] for r in refs for a in table_arms]
    out = []
    for metric, label, unit in metrics.metric_list(lists):
        for model in ([None] if metric == "total" else ["A", "B"]):
            row = _row(table_arms, sources, refs, (metric, label, unit, model))
            if any(row.arms.values()) or any(c for p in row.published for c in p.arms.values()):
                out.append(row)
    return tuple(out)


def _row(table_arms, sources, refs, key):
    metric, _, _, model = key
    test, control = table_arms
    cells = {a: (metrics.stats(metrics.values(sources[a], metric, model)) if sources[a] is not None else None)
             for a in table_arms}
    cache, state, reason = cache_fields(sources, metric, model, (control, test))
    pubs = []
    for r in refs:
        pub = {a: metrics.stats(metrics.values(published.events(r, a), metric, model)) for a in table_arms}
        pubs.append(PublishedCells(pub, metrics.ratio(pub[control], pub[test])))
    ratio = None if state == metrics.MIXED else metrics.ratio(cells[control], cells[test])
    return Row(*key, arms=cells, ratio=ratio, overlap=metrics.overlap(cells[test], cells[control]),
               published=tuple(pubs), cache=cache, cache_state=state, reason=reason)


def cache_fields(sources, metric, model, order):
    """A row's compile-cache fields: (cache {arm: CacheCounts} of the loads behind each arm's number (arms whose
    number involves loads), cache_state (metrics.cache_verdict), reason (why a ratio is missing or marked))."""
    cache = {a: metrics.cache_counts(metrics.loads_behind(sources[a], metric, model))
             for a in order if sources.get(a)}
    cache = {a: c for a, c in cache.items() if c.n}
    state, reason = metrics.cache_verdict(cache)
    return cache, state, reason


def _memory_rows(run, table_arms, units, usable):
    rows = []
    vals = {}
    for arm in table_arms:
        if usable[arm] is None:
            continue
        level = scenarios.ARMS[arm].sleep_level
        for model in ("A", "B"):
            vals[arm, model] = metrics.memory_values(usable[arm], model, level, lambda rep, u=units[arm]: run.h2d_gbps(u, rep))
    for key, label, unit in metrics.MEMORY:
        for model in ("A", "B"):
            cells = {a: metrics.stats(vals[a, model][key]) if (a, model) in vals else None for a in table_arms}
            if any(cells.values()):
                rows.append(MemoryRow(key, label, unit, model, cells))
    return tuple(rows)


def _notes(facts, table_arms, refs):
    notes = [FIXED_NOTE if facts.fixed_output else FREE_NOTE]
    if "nosleep" in table_arms:
        notes.append("no-sleep arm: the switch is a full restart, i.e. the load of rounds 1-3")
    if any(m.twin for m in facts.models.values()):
        notes.append("models are twins (see the header): numbers are not the study models' numbers")
    for i, r in enumerate(refs, 1):
        totals = ", ".join(f"{a} {(v.get('post_total') or {}).get('text')}" for a, v in r["arms"].items()
                           if (v.get("post_total") or {}).get("text"))
        models = ", ".join(f"{k} = {v}" for k, v in sorted(r["models"].items()))
        notes.append(f"published [{i}] {r['label']}: figure {r['figure']} ({models}); "
                     "total = sum of the figure's events"
                     + (f" (the post's text prints {totals})" if totals else "")
                     + "; the figures show no set-up sleeps")
    notes.append(f"{table_arms[1]}/{table_arms[0]} × = {table_arms[1]} median / {table_arms[0]} median (for times: "
                 f">1 means {table_arms[0]} is faster); '- <part>' rows are the timed parts of a wake")
    notes.append(CACHE_NOTE)
    if facts.at_once > 1:
        notes.append(f"up to {facts.at_once} jobs ran at once, one per GPU: their servers started and stopped "
                     "alongside each other on one host, so loads, stops and totals are not those of a serial run "
                     "(one id in --gpus runs serially)")
    if facts.devices > 1:
        notes.append(f"the run's jobs ran on {facts.devices} different GPUs (host and GPU uuid in the manifest's "
                     "jobs): a ratio between two arms also holds any difference between their GPUs")
    if facts.repeat and facts.repeat >= 2:
        notes.append("spread: the coefficient of variation (standard deviation / mean) of each arm over rounds and "
                     "repeats; 'overlap' = the two arms' min..max ranges overlap, so the difference may be noise")
    return notes


def build_table(run, number):
    spec = scenarios.TABLES[number]
    table_arms = list(spec.arms)
    units = {a: run.unit_for(number, a) for a in table_arms}
    states = tuple(arm_state(run, units[a], role) for a, role in zip(table_arms, ("test", "control")))
    usable = {s.arm: [r for r in run.units[s.unit] if r.ok] if s.has_numbers else None for s in states}
    sources = {a: None if reps is None else [e for r in reps for e in r.events] for a, reps in usable.items()}
    refs = published.references(number)
    facts = run_facts(run, [units[a] for a in table_arms])
    memory = _memory_rows(run, table_arms, units, usable)
    return Table(number, spec.title, facts, states, rows(table_arms, sources, refs), ratio=f"{table_arms[1]}/{table_arms[0]}",
                 script=spec.script, memory=memory, published=tuple(Source.of(r) for r in refs),
                 notes=tuple(_notes(facts, table_arms, refs) + _h2d_note(memory, usable)))


# why a unit has no host->GPU number (kit.manifest.h2d_by_device)
UNMEASURED_H2D = ("none was measured on the GPU it ran on, and another GPU's is not used (a kit before manifest "
                  "schema 3 measured once per lane, so a run it resumed on another GPU measured nothing there)")


def _h2d_note(memory, usable):
    """Why an arm with numbers has no host->GPU bandwidth where the other arm has one."""
    measured = [r for r in memory if r.metric == "h2d_gbps"]
    missing = [a for a, reps in usable.items() if reps and measured and all(r.arms.get(a) is None for r in measured)]
    if not missing:
        return []
    return [f"no host->GPU GB/s for {', '.join(missing)}: {UNMEASURED_H2D}"]
