"""One kit table (1-5) of a run as a JSON-able dict: header facts, the two arms' states, rows of
metrics per model (min / median / max / n, spread), memory rows, and the published numbers beside.

    table = build_table(load_run(run_dir), 1)

States of an arm: ok; suspect (a sleep check failed); failed (a repeat failed); unfinished (part of an
interrupted run, not run yet); not run (not part of this run).

A row whose numbers rest on loads (a load, a restart, a total) carries the compile-cache state of those
loads, from the load events: cache {arm: counts}, cache_state hit | miss | mixed | unknown, and reason.
Where the loads were not all in one state (mixed) the row has no ratio, and reason says why.
"""
from kit.results import metrics, published
from kit.workload import scenarios
from kit.workload.steps import base_arm

SCHEMA = 1
FIXED_NOTE = "output length fixed at max_tokens (ignore_eos)"
FREE_NOTE = "output length not fixed: a prompt stops at EOS or max_tokens (see the output tokens row)"
FACT_KEYS = ("gpu", "vllm", "torch", "cuda", "driver", "models", "protocol", "fixed_output", "cache",
             "repeat", "server_args")
NO_NUMBERS = ("failed", "not run", "unfinished")
CACHE_NOTE = ("a ratio of loads, restarts (the no-sleep switch) or totals is given where every load behind it found "
              "the compiled model in the compile cache, or every one compiled it (the load events say which); "
              "otherwise 'not comparable'. Wakes, sleeps and prompts involve no load")


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
    """What identifies a run: GPU, versions, models, protocol, options (headers, compare, figures)."""
    m, o = run.manifest, run.options
    env = m.get("environment") or next((r.env for reps in run.units.values() for r in reps if r.env), {})
    models = {k: {"name": v.get("name"), "twin": v.get("twin")} for k, v in sorted((m.get("models") or {}).items())}
    server_args = m.get("server_args") or {}
    return {"run_id": run.run_id, "gpu": gpu_name(env), "vllm": env_get(env, "vllm"),
            "torch": env_get(env, "torch"), "cuda": env_get(env, "cuda"), "driver": env_get(env, "driver"),
            "models": models, "protocol": o.protocol, "fixed_output": o.fixed_output, "cache": o.cache,
            "repeat": o.repeat, "runtime": o.runtime, "complete": m.get("complete"),
            "at_once": most_at_once(m.get("jobs") or []), "devices": len(devices(m.get("jobs") or [])),
            "stand_in": m.get("stand_in"),
            "server_args": {a: server_args.get(a) for a in (arms or sorted(server_args))}}


def _checks(reps):
    """(passed, failed [{repeat, seq, kind, model, round, check, detail}], skipped {check: reason})."""
    passed, failed, skipped = 0, [], {}
    for rep in reps:
        for e in rep.events:
            for c in e.get("checks") or []:
                if c["ok"] is None:
                    skipped.setdefault(c["check"], [0, c.get("detail") or ""])[0] += 1
                elif c["ok"]:
                    passed += 1
                else:
                    failed.append({"repeat": rep.repeat, "seq": e["seq"], "kind": e["kind"], "model": e["model"],
                                   "round": e["round"], "check": c["check"], "detail": c.get("detail")})
    return passed, failed, {k: {"count": n, "reason": why} for k, (n, why) in sorted(skipped.items())}


def arm_state(run, unit, role):
    reps = run.units.get(unit)
    arm = base_arm(unit)
    title = scenarios.ARMS[arm].title if arm in scenarios.ARMS else arm
    state = {"arm": arm, "unit": unit, "role": role, "title": title, "repeats": len(reps or []), "errors": [],
             "checks_passed": 0, "failed_checks": [], "skipped_checks": {}, "loads": None}
    if reps is None:
        return dict(state, state="not run")
    errors = [f"r{r.repeat}: {r.error}" for r in reps if not r.ok and not r.pending]
    if not errors and any(r.pending for r in reps):
        return dict(state, state="unfinished", errors=[f"r{r.repeat}: not run yet" for r in reps if r.pending])
    passed, failed, skipped = _checks([r for r in reps if r.ok])
    label = "failed" if errors else "suspect" if failed else "ok"
    loads = metrics.cache_counts([e for r in reps if r.ok for e in r.events if e["kind"] == "load"])
    return dict(state, state=label, errors=errors, checks_passed=passed, failed_checks=failed, skipped_checks=skipped,
                loads=loads)


def rows(table_arms, sources, refs):
    """sources: arm -> event list (None: no numbers). One row per (metric, model) with any number."""
    lists = [s for s in sources.values() if s] + [r["arms"][a]["events"] for r in refs for a in table_arms]
    test, control = table_arms
    rows = []
    for metric, label, unit in metrics.metric_list(lists):
        for model in ([None] if metric == "total" else ["A", "B"]):
            cells = {a: (metrics.stats(metrics.values(sources[a], metric, model)) if sources[a] is not None else None)
                     for a in table_arms}
            row = {"metric": metric, "label": label, "unit": unit, "model": model, "arms": cells,
                   "ratio": metrics.ratio(cells[control], cells[test]),
                   "overlap": metrics.overlap(cells[test], cells[control]), "published": [],
                   **cache_fields(sources, metric, model, (control, test))}
            if row["cache_state"] == "mixed":
                row["ratio"] = None
            for r in refs:
                pub = {a: metrics.stats(metrics.values(published.events(r, a), metric, model)) for a in table_arms}
                row["published"].append({"arms": pub, "ratio": metrics.ratio(pub[control], pub[test])})
            if any(cells.values()) or any(c for p in row["published"] for c in p["arms"].values()):
                rows.append(row)
    return rows


def cache_fields(sources, metric, model, order):
    """A row's compile-cache fields: cache {arm: counts} of the loads behind each arm's number (arms whose
    number involves loads), cache_state (metrics.cache_verdict) and reason (why a ratio is missing or marked)."""
    cache = {a: metrics.cache_counts(metrics.loads_behind(sources[a], metric, model))
             for a in order if sources.get(a)}
    cache = {a: c for a, c in cache.items() if c["n"]}
    state, reason = metrics.cache_verdict(cache)
    return {"cache": cache, "cache_state": state, "reason": reason}


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
                rows.append({"metric": key, "label": label, "unit": unit, "model": model, "arms": cells})
    return rows


def _notes(facts, table_arms, refs):
    notes = [FIXED_NOTE if facts["fixed_output"] else FREE_NOTE]
    if "nosleep" in table_arms:
        notes.append("no-sleep arm: the switch is a full restart, i.e. the load of rounds 1-3")
    if any(m.get("twin") for m in facts["models"].values()):
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
    if facts["at_once"] > 1:
        notes.append(f"up to {facts['at_once']} jobs ran at once, one per GPU: their servers started and stopped "
                     "alongside each other on one host, so loads, stops and totals are not those of a serial run "
                     "(one id in --gpus runs serially)")
    if facts.get("devices", 1) > 1:
        notes.append(f"the run's jobs ran on {facts['devices']} different GPUs (host and GPU uuid in the manifest's "
                     "jobs): a ratio between two arms also holds any difference between their GPUs")
    if facts["repeat"] and facts["repeat"] >= 2:
        notes.append("spread: the coefficient of variation (standard deviation / mean) of each arm over rounds and "
                     "repeats; 'overlap' = the two arms' min..max ranges overlap, so the difference may be noise")
    return notes


def build_table(run, number):
    spec = scenarios.TABLES[number]
    table_arms = list(spec.arms)
    units = {a: run.unit_for(number, a) for a in table_arms}
    states = [arm_state(run, units[a], role) for a, role in zip(table_arms, ("test", "control"))]
    usable = {s["arm"]: None if s["state"] in NO_NUMBERS else [r for r in run.units[s["unit"]] if r.ok]
              for s in states}
    sources = {a: None if reps is None else [e for r in reps for e in r.events] for a, reps in usable.items()}
    refs = published.references(number)
    facts = run_facts(run, [units[a] for a in table_arms])
    return {"schema": SCHEMA, "table": number, "title": spec.title, "script": spec.script, "run": facts,
            "arms": states, "ratio": f"{table_arms[1]}/{table_arms[0]}",
            "rows": rows(table_arms, sources, refs), "memory": _memory_rows(run, table_arms, units, usable),
            "published": [{k: r[k] for k in ("figure", "gpu", "vllm", "label", "models")} for r in refs],
            "notes": _notes(facts, table_arms, refs)}
