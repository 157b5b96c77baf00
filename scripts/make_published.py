#!/usr/bin/env python3
"""Derive kit/results/published.json (the published numbers per kit table) from the reference data file.

    python3 scripts/make_published.py [REFERENCE_JSON] [--out kit/results/published.json] [--check]

REFERENCE_JSON defaults to $SLEEPKIT_REFERENCE, else ../shared/reference/blog-2025-10-26-sleep-mode.json
next to the repository. Numbers are copied unchanged; each timeline event is renamed into the kit's
vocabulary ({kind, model, round}); the only derived numbers are the per-series totals, marked
"total_s_computed" (the figures draw no total). --check exits 1 when the file on disk differs.
"""
import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REF = REPO.parent / "shared" / "reference" / "blog-2025-10-26-sleep-mode.json"
DEFAULT_OUT = REPO / "kit" / "results" / "published.json"

# kit table -> its references: (figure id, {kit arm: series name in that figure})
# Study README numbering; the first reference of a table is its primary one (the study's A100 runs).
MAPPING = {
    1: [("plotly-sleep-levels-comparison", {"l1": "Sleep Mode (Level 1)", "nosleep": "WITHOUT Sleep Mode"}),
        ("plotly-sleep-mode-a4000", {"l1": "WITH Sleep Mode (L1)", "nosleep": "WITHOUT Sleep Mode"})],
    2: [("plotly-ablation-quant", {"l1": "Sleep Mode (BF16)", "l1-fp8": "Sleep Mode (FP8)"})],
    3: [("plotly-ablation-warmup", {"l1": "With Warm-Up", "l1-nowarm": "Without Warm-Up"})],
    4: [("plotly-sleep-levels-comparison", {"l1": "Sleep Mode (Level 1)", "l2": "Sleep Mode (Level 2)"})],
    5: [("plotly-sleep-levels-comparison", {"l2": "Sleep Mode (Level 2)", "nosleep": "WITHOUT Sleep Mode"})],
}
TABLE_ARMS = {1: ("l1", "nosleep"), 2: ("l1", "l1-fp8"), 3: ("l1", "l1-nowarm"), 4: ("l1", "l2"), 5: ("l2", "nosleep")}

# The totals the post's text prints, per (figure, series): (post table id, row, column). Verbatim text.
POST_TOTALS = {
    ("plotly-sleep-levels-comparison", "Sleep Mode (Level 1)"): ("performance_summary", "Level 1", "Total Time"),
    ("plotly-sleep-levels-comparison", "Sleep Mode (Level 2)"): ("performance_summary", "Level 2", "Total Time"),
    ("plotly-sleep-levels-comparison", "WITHOUT Sleep Mode"): ("performance_summary", "No Sleep", "Total Time"),
    ("plotly-ablation-warmup", "With Warm-Up"): ("warmup_key_findings", "Total Time (5 switches)", "With Warm-Up"),
    ("plotly-ablation-warmup", "Without Warm-Up"): ("warmup_key_findings", "Total Time (5 switches)", "Without Warm-Up"),
    ("plotly-ablation-quant", "Sleep Mode (BF16)"): ("fp8_key_findings", "Total Time (5 switches)", "BF16"),
    ("plotly-ablation-quant", "Sleep Mode (FP8)"): ("fp8_key_findings", "Total Time (5 switches)", "FP8"),
}

KINDS = {"model load": "load", "model warm up": "warmup", "model wake up": "wake",
         "model prompt": "prompt", "model sleep": "sleep"}


def convert(series):
    """Timeline events -> kit events. Round 0 = set-up (first loads, warm-ups); a new round starts
    with model A's switch-in: its wake (sleep arms) or its load (no-sleep arm)."""
    switch_in = "wake" if any(KINDS[e["event"][2:].lower()] == "wake" for e in series) else "load"
    out, rnd = [], 0
    for e in series:
        model, kind = e["event"][0], KINDS[e["event"][2:].lower()]
        if model == "A" and kind == switch_in:
            rnd += 1
        out.append({"kind": kind, "model": model, "round": rnd, "duration_s": e["duration_s"], "label": e["event"]})
    assert rnd == 3, f"expected 3 rounds, got {rnd}"
    return out


def post_total(ref, figure, series):
    where = POST_TOTALS.get((figure, series))
    if not where:
        return None
    table = ref["tables"][where[0]]
    row = next(r for r in table["rows"] if r[0] == where[1])
    return {"text": row[table["columns"].index(where[2])], "post_table": where[0], "row": where[1], "column": where[2]}


def reference(ref, figure, arms):
    fig = ref["figures"][figure]
    out = {"figure": figure, "gpu": fig["gpu"], "vllm": fig["vllm"], "models": fig["models"], "tp": fig["tp"],
           "caption": fig["caption"], "arms": {}}
    for arm, series in arms.items():
        events = convert(fig["series"][series])
        out["arms"][arm] = {"series": series, "events": events,
                            "total_s_computed": round(sum(e["duration_s"] for e in events), 2),
                            "post_total": post_total(ref, figure, series)}
    return out


def build(ref):
    src = ref["source"]
    return {
        "generated_by": "scripts/make_published.py",
        "source": {k: src[k] for k in ("title", "url", "repository", "snapshot_commit", "published")},
        "source_file": "shared/reference/blog-2025-10-26-sleep-mode.json",
        "note": ("Durations in seconds, copied unchanged from the blog's timeline figures; events renamed "
                 "to the kit's vocabulary (label = the figure's own name). total_s_computed is the sum of a "
                 "series' events (the figures draw no total); post_total is the total the post's text prints. "
                 "The figures show no set-up sleeps. The first reference of a table is its primary one."),
        "tables": {str(n): {"arms": list(TABLE_ARMS[n]), "references": [reference(ref, f, a) for f, a in refs]}
                   for n, refs in MAPPING.items()},
    }


def dumps(data):
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", nargs="?", default=os.environ.get("SLEEPKIT_REFERENCE", str(DEFAULT_REF)))
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--check", action="store_true", help="compare with the file on disk instead of writing")
    opts = p.parse_args(argv)
    text = dumps(build(json.loads(Path(opts.reference).read_text(encoding="utf-8"))))
    out = Path(opts.out)
    if opts.check:
        same = out.exists() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'up to date' if same else 'DIFFERS from ' + opts.reference}")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
