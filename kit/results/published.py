"""The study's published numbers (kit/results/published.json, made by scripts/make_published.py),
per kit table: one or more references (figure, GPU, vLLM version, models), each with the events of
both arms in the kit's vocabulary. The first reference of a table is its primary one (A100)."""
import json
from functools import lru_cache
from pathlib import Path

from kit.errors import BadInput

PATH = Path(__file__).with_name("published.json")
FACTS = {"fixed_output": False, "cache": "not stated", "protocol": "seed (the original scripts)"}


@lru_cache(maxsize=1)
def published():
    return json.loads(PATH.read_text(encoding="utf-8"))


def label(ref):
    return f"{ref['gpu']}, vLLM {ref['vllm']}"


def references(number):
    """The references of a table: [{figure, gpu, vllm, label, models, arms: {arm: {events, total_s_computed,
    post_total}}}], primary first."""
    return [dict(r, label=label(r)) for r in published()["tables"][str(number)]["references"]]


def gpus():
    return sorted({r["gpu"].lower() for t in published()["tables"].values() for r in t["references"]})


def pick(number, gpu=None):
    """The reference of a table for `published:<gpu>` (default: the primary one); None if it has none."""
    refs = references(number)
    if gpu is None:
        return refs[0]
    if gpu.lower() not in gpus():
        raise BadInput(f"published:{gpu}: no such source", f"use published, or published:{' or published:'.join(gpus())}")
    return next((r for r in refs if r["gpu"].lower() == gpu.lower()), None)


def events(ref, arm):
    """A published series' events plus its computed total as a total event."""
    series = ref["arms"][arm]
    return series["events"] + [{"kind": "total", "model": None, "round": 0, "duration_s": series["total_s_computed"]}]


def expected_seconds(arm):
    """How long an arm takes by the published numbers (mean of its series' totals): for ETAs and ordering."""
    totals = [r["arms"][arm]["total_s_computed"] for t in published()["tables"].values()
              for r in t["references"] if arm in r["arms"]]
    return sum(totals) / len(totals) if totals else None
