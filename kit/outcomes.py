"""What `kit run` and `kit sweep` say when their jobs are done (kit.run.Outcome, one per run): each run's tables
(a group of runs: the first beside each other; a sweep: its guide), where its files are and the commands that
draw and archive it; then how it ended: RunFailed when jobs failed or could not run, with the resume command."""
from pathlib import Path

from kit import hints, layout, results
from kit.errors import RunFailed
from kit.results import compare, guide, render, summary


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
