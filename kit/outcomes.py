"""What `kit run` and `kit sweep` say when their jobs are done (kit.run.Outcome, one per run): each run's tables
(a group of runs: the first beside each other; a sweep: its guide), where its files are and the commands that
draw and archive it; then how it ended: RunFailed when jobs failed or could not run, with the resume command.
And what `kit compare` prints: two runs, or a run and the published numbers, table by table."""
import re
from pathlib import Path

from kit import bundle, hints, layout, results
from kit.errors import NotFound, RunFailed
from kit.results import compare, guide, render, summary

PUBLISHED = re.compile(r"published(?::(\w+))?")      # `kit compare RUN published[:gpu]`


def report(outcomes, say):
    """say() the outcomes' text; RunFailed when any job failed or was not run."""
    runs = [o.run for o in outcomes]
    numbers = runs[0].options.table_numbers()
    if guide.is_sweep(runs[0]):
        for run in runs:
            say(guide.text(guide.build_guide(run), width=render.terminal_width()))
            say(next_steps(run, "guide", f"{layout.RunDir(run.source).tables_dir}/guide.md and .json", "figure"))
    if numbers:
        for text in tables_texts(runs, numbers):
            say(text)
        for run in runs:
            say(next_steps(run, "tables", f"{layout.RunDir(run.source).tables_dir}/table<N>.md and .json", "figures"))
    ending(outcomes)


def tables_texts(runs, numbers):
    """One run: its tables and what they say; a group: the first run beside each other, table by table."""
    width = render.terminal_width()
    if len(runs) == 1:
        built = [results.build_table(runs[0], n) for n in numbers]
        return [render.text(built, width=width), summary.text(built, width)]
    return [compare.compare_text(compare.compare(results.build_table(runs[0], n), results.build_table(other, n), n))
            for other in runs[1:] for n in numbers]


def compare_texts(first, second, results_dir=None, number=None, fmt="terminal", wide=False, say=None):
    """`kit compare`: one text per table (number; default: every table of first) that second has numbers for.
    first, second: a run id (in results_dir), run folder or bundle; second may be published[:gpu]. NotFound
    when second has none of those tables. At most the terminal's width unless wide."""
    a = bundle.load_any(first, results_dir, say=say)
    source = PUBLISHED.fullmatch(second)
    b = None if source else bundle.load_any(second, results_dir, say=say)
    width = None if wide else render.terminal_width()
    texts = []
    for n in [number] if number else a.tables:
        tb = compare.published_table(n, source.group(1)) if source else results.build_table(b, n)
        if tb is not None:
            cmp = compare.compare(results.build_table(a, n), tb, n, against_published=bool(source))
            texts.append(compare.compare_text(cmp, fmt, width))
    if not texts:
        raise NotFound(f"{second} has no numbers for table(s) {number or ', '.join(map(str, a.tables))}")
    return texts


def next_steps(run, what, where, figures):
    """Where the run's tables (or guide) are, and the commands that draw and archive it, as they run here."""
    kit, flag = hints.kit_command(), hints.results_flag(Path(run.source).parent)
    return f"{what}: {where}\n{figures}: `{kit} plot {run.run_id}{flag}`\narchive: `{kit} bundle {run.run_id}{flag}`"


def ending(outcomes):
    """RunFailed for jobs not run (no usable GPU left) or failed, naming the commands that finish them."""
    not_run = [o for o in outcomes if o.not_run]
    if not_run:
        reasons = "; ".join(f"{lane.label}: {why}" for lane, why in not_run[0].retired.items())
        raise RunFailed(f"{sum(len(o.not_run) for o in not_run)} job(s) not run: no usable GPU left ({reasons})",
                        "finish with " + " and ".join(f"`{o.work.resume_hint()}`" for o in not_run) + " when a GPU is free")
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise RunFailed(f"{sum(o.failed for o in failed)} job(s) failed (see the FAILED lines above)",
                        "rerun them with " + " and ".join(f"`{o.work.resume_hint()}`" for o in failed))
