"""kit: run the vLLM Sleep Mode study's five tables and keep the results.

Bad input gets one line on stderr and exit status 2.
"""
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import click

from kit import __version__, scenarios

TABLE_NUMBERS = [str(n) for n in scenarios.TABLES]


class BadInput(click.UsageError):
    """Raised for anything the user can fix; printed as one line, exit 2."""


def results_option(f):
    return click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False),
                        help="Where runs are kept.")(f)


def readable_dir(path):
    p = Path(path)
    if not p.is_dir() or not os.access(p, os.R_OK | os.X_OK):
        raise BadInput(f"results dir {path} is not a readable folder; pass --results-dir DIR")
    return p


def pick_run(results_dir, run_id):
    root = readable_dir(results_dir)
    if run_id:
        run = root / run_id
        if not (run / "manifest.json").exists():
            raise BadInput(f"no run {run_id!r} in {results_dir} (no manifest.json); list them with ls {results_dir}")
        return run
    runs = sorted(p for p in root.iterdir() if (p / "manifest.json").exists() and p.name != "reference")
    if not runs:
        raise BadInput(f"no runs in {results_dir}; start one with `kit run 1`")
    return max(runs, key=lambda p: (json.loads((p / "manifest.json").read_text())["created"], p.name))


def parse_tables(tables, all_tables):
    if all_tables and tables:
        raise BadInput("give table numbers or --all, not both")
    if all_tables:
        return sorted(scenarios.TABLES)
    if not tables:
        raise BadInput("which tables? give numbers 1-5 (e.g. `kit run 1 4`) or --all")
    numbers = []
    for t in tables:
        t = t.lower().removeprefix("table")
        if t not in TABLE_NUMBERS:
            raise BadInput(f"unknown table {t!r}: the study has tables 1-5")
        numbers.append(int(t))
    return sorted(set(numbers))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kit")
def cli():
    """Reproduce vLLM's Sleep Mode study (Tables 1-5) on your own GPU and keep the results.

    \b
    Typical use:
      kit doctor                 can a run start here?
      kit run 1                  Table 1 (sleep L1 vs no sleep), in Docker
      kit run --all              all five tables, every arm once
      kit table                  the latest run's tables, next to the published numbers
      kit bundle                 archive the latest run (tar.gz + SHA256SUMS)
    """


@cli.command()
@click.argument("tables", nargs=-1)
@click.option("--all", "all_tables", is_flag=True, help="All five tables (each arm runs once).")
@click.option("--runtime", type=click.Choice(["docker", "local"]), default="docker", show_default=True,
              help="docker: one fresh GPU container per arm; local: the workload runs on this host.")
@click.option("--model-a", default=scenarios.MODEL_A, show_default=True, help="Model A: HF name or local dir.")
@click.option("--model-b", default=scenarios.MODEL_B, show_default=True, help="Model B: HF name or local dir.")
@click.option("--repeat", default=1, show_default=True, type=int, help="Repeats of every arm.")
@results_option
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Finish an interrupted run (skips complete arms).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the server commands; start nothing.")
@click.option("--protocol", type=click.Choice(["corrected", "seed"]), default="corrected", show_default=True,
              help="seed: replay the original scripts' requests (JSON-body sleep level, 5 s readiness polling).")
@click.option("--fixed-output", is_flag=True, help="Send ignore_eos so every prompt yields exactly max_tokens.")
@click.option("--server-cmd", default="python3 -m vllm.entrypoints.openai.api_server", show_default=True,
              help="Server command; the kit appends --model, --host, --port and the study's arguments.")
@click.option("--ready-timeout", default=900.0, show_default=True, type=float, help="Seconds a server may take to start.")
@click.option("--call-timeout", default=300.0, show_default=True, type=float, help="Seconds one HTTP call may take.")
@click.option("--cache", type=click.Choice(["cold", "shared"]), default="cold", show_default=True,
              help="Compile caches: cold = empty per arm (fair); shared = one persistent cache.")
@click.option("--image", help="docker: use this existing image, skip the build.")
@click.option("--gpus", default="all", show_default=True, help="docker: GPUs for the containers: all, none, or 0,1.")
@click.option("--hf-cache", default="~/.cache/huggingface", show_default=True, help="docker: host HF cache to mount.")
def run(tables, all_tables, **opts):
    """Run the arms that TABLES need (1-5, or --all) and print the tables."""
    from kit import run as runner
    if opts["resume_id"] and (tables or all_tables):
        raise BadInput("--resume takes the tables of the run it finishes; give no table numbers")
    numbers = [] if opts["resume_id"] else parse_tables(tables, all_tables)
    if opts["repeat"] < 1:
        raise BadInput(f"--repeat must be at least 1 (got {opts['repeat']})")
    opts["tables"] = numbers
    arms = scenarios.arms_for(numbers)
    if opts["dry_run"]:
        return print_plan(numbers, arms, opts)
    results = Path(opts["results_dir"])
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"cannot create results dir {results}: {e.strerror}; pass --results-dir DIR") from None
    if not os.access(results, os.W_OK):
        raise BadInput(f"results dir {results} is not writable; pass --results-dir DIR")
    runtime = make_runtime(opts)
    if opts["resume_id"]:
        run_dir = results / opts["resume_id"]
        if not (run_dir / "manifest.json").exists():
            raise BadInput(f"cannot resume {opts['resume_id']!r}: no such run in {results}")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        opts.update({k: manifest["options"][k] for k in ("repeat", "protocol", "fixed_output", "server_cmd")},
                    model_a=manifest["models"]["A"]["name"], model_b=manifest["models"]["B"]["name"],
                    tables=manifest["options"]["tables"])
    else:
        run_id = runner.new_run_id(results, numbers)
        run_dir = results / run_id
        run_dir.mkdir()
        manifest = runner.new_manifest(run_id, opts, arms, runtime)
        runner.write_json(run_dir / "manifest.json", manifest)
    say = lambda line: click.echo(line)
    say(f"run {manifest['run_id']}: tables {', '.join(map(str, manifest['options']['tables']))}; "
        f"arms {', '.join(manifest['options']['arms'])}; runtime {runtime.name}; results in {run_dir}")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        failed = runner.run_arms(run_dir, manifest, opts, runtime, say)
    except KeyboardInterrupt:
        runtime.stop_run(manifest["run_id"])
        manifest.update(complete=False, interrupted=runner.now())
        runner.write_json(run_dir / "manifest.json", manifest)
        click.echo(f"interrupted: everything stopped; finish with `kit run --resume {manifest['run_id']}"
                   f" --results-dir {results}`", err=True)
        sys.exit(130)
    manifest.update(complete=True, ended=runner.now())
    manifest.pop("interrupted", None)
    runner.write_json(run_dir / "manifest.json", manifest)
    show_tables(run_dir, manifest["options"]["tables"], "github")
    sys.exit(1 if failed else 0)


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def make_runtime(opts):
    from kit.runtimes import get_runtime
    if opts["runtime"] == "local":
        return get_runtime("local")
    return get_runtime("docker", image=opts["image"], gpus=opts["gpus"], hf_cache=opts["hf_cache"],
                       cache=opts["cache"])


def print_plan(numbers, arms, opts):
    from kit import run as runner
    click.echo(f"plan: tables {', '.join(map(str, numbers))} -> arms in order: {', '.join(arms)} "
               f"(x{opts['repeat']} each); runtime {opts['runtime']}; protocol {opts['protocol']}")
    for i, arm in enumerate(arms, 1):
        a = scenarios.ARMS[arm]
        click.echo(f"[{arm} {i}/{len(arms)}] {a.title}")
        for model, cmd in runner.server_commands(opts, arm).items():
            click.echo(f"    server {model}: VLLM_SERVER_DEV_MODE=1 {shlex.join(cmd)}")
    click.echo("dry run: nothing started")


def show_tables(run_dir, numbers, fmt):
    from kit import report
    run = report.load_run(run_dir)
    report.write_tables(run_dir, numbers)
    for n in numbers:
        click.echo(report.render(report.build_table(run, n), fmt))


@cli.command()
@click.argument("run_id", required=False)
@results_option
@click.option("--table", "tables", multiple=True, help="Only these tables (default: the run's).")
@click.option("--format", "fmt", type=click.Choice(["github", "plain", "json"]), default="github", show_default=True)
def table(run_id, results_dir, tables, fmt):
    """Render a run's tables (default: the latest run) beside the published numbers."""
    from kit.events import SchemaError
    run_dir = pick_run(results_dir, run_id)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    numbers = parse_tables(tables, False) if tables else manifest["options"]["tables"]
    try:
        show_tables(run_dir, numbers, fmt)
    except SchemaError as e:
        raise BadInput(f"malformed events: {e}") from None


def main():
    try:
        return cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "kit"
        click.echo(f"{cmd}: error: {e.format_message()} (see `{cmd} --help`)", err=True)
        return 2
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
