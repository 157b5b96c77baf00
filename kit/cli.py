"""kit: run the vLLM Sleep Mode study's five tables and keep the results.

Only click: the command line and the KIT_* environment variables (click's envvar=) are parsed here, once,
into kit.options.RunOptions and arguments of the library; errors are kit.errors.KitError and become one
line on stderr with their exit status in main(), the only place that translates them.
"""
from dataclasses import fields

import click

from kit import __version__, hints, layout
from kit.errors import BadInput, KitError
from kit.options import RunOptions, flag, parse_tables, run_options, sweep_addition, sweep_options
from kit.twins import TWINS
from kit.workload import scenarios

FORMATS = ("terminal", "github", "plain", "json")


# -- shared option groups -----------------------------------------------------------------------------
def results_option(f):
    return click.option("--results-dir", default=layout.RESULTS, envvar="KIT_RESULTS_DIR", show_envvar=True,
                        show_default=True, type=click.Path(file_okay=False), help="Where runs are kept.")(f)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True,
                        help="terminal: at most 120 columns; github: Markdown; json: one document.")(f)


def tables_option(f):
    return click.option("--table", "tables", multiple=True, metavar="N[,N]",
                        help="Only these tables, e.g. --table 1,2 (default: the run's).")(f)


def option_fields(*names):
    """click options made from RunOptions fields: their help, default and choices in one place."""
    by_name = {f.name: f for f in fields(RunOptions)}

    def decorate(func):
        for name in reversed(names):
            f = by_name[name]
            kind = f.type
            kw = {"help": f.metadata["help"][:1].upper() + f.metadata["help"][1:] + ".", "show_default": True}
            if kind is bool:
                kw.update(is_flag=True, default=False, show_default=False)
            else:
                kw.update(default=f.default, type=click.Choice(f.metadata["choices"]) if "choices" in f.metadata
                          else {int: int, float: float}.get(kind, str))
                if f.default == "":
                    kw["show_default"] = False
            if "envvar" in f.metadata:
                kw.update(envvar=f.metadata["envvar"], show_envvar=True)
            func = click.option("--" + flag(name), name, **kw)(func)
        return func
    return decorate


RUN_FIELDS = ("runtime", "model_a", "model_b", "repeat", "protocol", "fixed_output", "server_cmd", "ready_timeout",
              "call_timeout", "cache", "gpus", "gpu_access", "image", "vllm_image", "hf_cache", "slurm_partition",
              "slurm_account", "slurm_time", "slurm_args", "slurm_python", "slurm_container")
SWEEP_FIELDS = tuple(f for f in RUN_FIELDS if f not in ("model_a", "model_b", "protocol"))
DOCTOR_FIELDS = ("runtime", "model_a", "model_b", "server_cmd", "gpus", "gpu_access", "image", "vllm_image",
                 "hf_cache", "slurm_partition", "slurm_account", "slurm_time", "slurm_args", "slurm_python",
                 "slurm_container")


def explicit(ctx, names):
    """{name: value} of the options typed on the command line (or set in the environment)."""
    sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) in sources}


# -- the group ----------------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kit")
def cli():
    """Reproduce vLLM's Sleep Mode study (Tables 1-5) on your own GPU and keep the results.

    \b
    Typical use:
      kit doctor                 can a run start here?
      kit run 1                  Table 1 (sleep L1 vs no sleep), in Docker
      kit run --all --gpus 0,1   all five tables, two arms at a time on two GPUs
      kit table                  the latest run's tables, next to the published numbers
      kit ls / kit show RUN      the runs, one of them
      kit plot / kit bundle      figures / a verified archive of the latest run
      kit sweep --models A,B     which sleep level for which model size, on this GPU (the guide)
    """


@cli.command()
@click.argument("tables", nargs=-1)
@click.option("--all", "all_tables", is_flag=True, help="All five tables (each arm runs once per repeat).")
@click.option("--arm", "arms", multiple=True, type=click.Choice(list(scenarios.ARMS)),
              help="Run only this arm (repeatable) instead of whole tables; tables show the others as not run.")
@option_fields(*RUN_FIELDS)
@results_option
@click.option("--run-id", help="Name the run (default: the UTC time and tables, e.g. 20261128-031024-t1).")
@click.option("--resume", "resume_id", metavar="RUN_ID",
              help="Finish an interrupted run with its own options (complete jobs are skipped).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the server commands; start nothing.")
@click.pass_context
def run(ctx, tables, all_tables, arms, results_dir, run_id, resume_id, dry_run, **values):
    """Run the arms that TABLES need (1-5, or --all) and print the tables.

    Each (arm, repeat) is a job; jobs run one per GPU at a time (--gpus), longest first. Ctrl-C stops
    everything and prints the --resume command.
    """
    from kit import run as runner
    options = run_options(tables, all_tables, arms, run_id, resume_id, values)
    runner.start(options, results_dir, run_id, resume_id, explicit(ctx, RUN_FIELDS), dry_run, say=click.echo)


@cli.command()
@click.option("--models", "models", metavar="M1,M2,...", help="Models (hub names or local folders), comma-separated.")
@click.option("--levels", default="1,2", show_default=True, metavar="1,2", help="Sleep levels to measure each model at.")
@click.option("--gpu-memory-gib", type=float, default=0.0, help="Skip the models that do not fit this many GiB "
              "(default: the GPU's memory by NVML; without NVML nothing is skipped). With --add-models: for "
              "the added models only.")
@option_fields(*SWEEP_FIELDS)
@results_option
@click.option("--run-id", help="Name the run (default: the UTC time, e.g. 20261128-031024-guide).")
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Finish an interrupted sweep with its own options.")
@click.option("--add-models", metavar="M5,M6,...", help="With --resume: add these models to the sweep run (a complete "
              "one too), at its levels, fitted against this GPU's memory now; their units run with the run's unfinished ones.")
@click.option("--dry-run", is_flag=True, help="Print the fit of each model, the plan and the server commands; start nothing.")
@click.pass_context
def sweep(ctx, models, levels, gpu_memory_gib, results_dir, run_id, resume_id, add_models, dry_run, **values):
    """Which sleep level for which model size: per model and level one server (load, warm-up, then three
    cycles of sleep -> wake -> prompt), then the guide (tables/guide.md) and its crossover.

    A model whose estimated memory (config.json: parameters x dtype + KV cache) exceeds
    --gpu-memory-utilization x the GPU's memory is skipped before anything starts, with the reason. The
    servers get the study's arguments but --gpu-memory-utilization 0.9 (one server at a time).
    """
    from kit import run as runner
    add = sweep_addition(add_models, gpu_memory_gib, resume_id)
    options = sweep_options(models, explicit(ctx, ("levels",)).get("levels"), gpu_memory_gib, run_id, resume_id, values)
    runner.start(options, results_dir, run_id, resume_id, explicit(ctx, SWEEP_FIELDS), dry_run, say=click.echo, add=add)


# -- reading runs -------------------------------------------------------------------------------------
def note(line):
    """Which run was picked, when it is not the obvious one: on stderr, so stdout stays the output."""
    click.echo(f"kit: {line}", err=True)


def pick(results_dir, run_id):
    from kit import runs
    return runs.pick_run(results_dir, run_id, say=note)


@cli.command()
@click.argument("run_id", required=False)
@results_option
@tables_option
@format_option
@click.option("--wide", is_flag=True, help="Every column: min..max, n, spread and every published source "
              "(default: what fits the terminal's width).")
@click.option("--loads", "loads_only", is_flag=True,
              help="Only the load breakdown (with --format json: its JSON, which the tables' JSON leaves out).")
def table(run_id, results_dir, tables, fmt, wide, loads_only):
    """Show a run's tables (default: the latest run) beside the published numbers, then its load breakdown
    (what each server load was made of: weights, compile, CUDA graphs, rest of engine init, start-up, and
    whether it compiled or read the compile cache), then what each table says in a sentence. Writes nothing.
    RUN_ID may be a bundle (.tar.gz): it is read only if it passes `kit bundle verify`."""
    from kit import bundle as bundles
    from kit import results
    run = bundles.load_named(run_id, results_dir, say=note)
    click.echo(results.view_text(run, parse_tables(tables), fmt, wide, loads_only), nl=False)


@cli.command()
@click.argument("run_id", required=False)
@results_option
@tables_option
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the figures (default: <run>/figures/).")
def plot(run_id, results_dir, tables, out):
    """Draw a run's figures (PNG and SVG under <run>/figures/, with figures/index.json: what each one shows, so
    that `kit site` copies them instead of drawing them again)."""
    from kit import plot as plots
    from kit import results
    run_dir = pick(results_dir, run_id)
    run = results.load_run(run_dir.path)
    if out is None and run_dir.path.resolve().parent.name == layout.REFERENCE:
        note(f"{run_dir.run_id} is a committed reference run: commit what changes in its figures/ (SVG, index.json)")
    for path in plots.plot_run(run, parse_tables(tables) or run.tables, out):
        click.echo(str(path))


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, metavar="[RUN_ID] | verify FILE")
@results_option
@click.option("--allow-incomplete", is_flag=True, help="Bundle an interrupted run (the manifest says so).")
@click.option("--no-figures", is_flag=True, help="Leave the figures out (a smaller archive; `kit plot` redraws them).")
def bundle(args, results_dir, allow_incomplete, no_figures):
    """Archive a run as <results>/<run-id>.tar.gz with SHA256SUMS, or check one.

    \b
      kit bundle               the latest run
      kit bundle RUN_ID        that run
      kit bundle verify FILE   checksums, schemas, tables re-rendered from the events
    """
    from kit import bundle as bundles
    if args[:1] == ("verify",):
        if len(args) != 2:
            raise BadInput("kit bundle verify takes one FILE (a .tar.gz made by kit bundle)")
        return bundles.verify_report(args[1], say=click.echo)
    if len(args) > 1:
        raise BadInput("kit bundle takes at most one RUN_ID")
    click.echo(str(bundles.bundle_named(args[0] if args else None, results_dir, allow_incomplete, not no_figures, say=note)))


@cli.command()
@click.argument("first")
@click.argument("second")
@results_option
@click.option("--table", "number", type=click.IntRange(1, 5), help="Which table (default: every table of FIRST).")
@format_option
@click.option("--wide", is_flag=True, help="One grid and unwrapped lines (default: what fits the terminal's width).")
def compare(first, second, results_dir, number, fmt, wide):
    """Two runs side by side, table by table; SECOND may be `published` (the study's A100 numbers) or
    `published:a4000`. FIRST and SECOND are run ids (in --results-dir), run folders or bundles."""
    from kit import outcomes
    for text in outcomes.compare_texts(first, second, results_dir, number, fmt, wide, say=note):
        click.echo(text)


@cli.command()
@click.argument("sources", nargs=-1, metavar="[RUN|BUNDLE ...]")
@results_option
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the site (new, empty, or an earlier site: it is replaced).")
@click.option("--no-figures", is_flag=True, help="Leave the figures out (drawing them is most of the time).")
def site(sources, results_dir, out, no_figures):
    """Write a static website of runs (default: every run in --results-dir): the runs side by side, a page per
    run (tables, figures, sleep checks, provenance, bundle), compare pages and every event as CSV and JSON.
    It opens from the folder (file://) or any static host; nothing is fetched from elsewhere."""
    from kit import site as sites
    index = sites.build(sources, out, results_dir, say=lambda line: click.echo(line, err=True), draw=not no_figures)
    click.echo(str(index))


def wide_option(f):
    return click.option("--wide", is_flag=True, help="Everything, however wide (default: fits 80 columns).")(f)


@cli.command(name="ls")
@results_option
@wide_option
def list_runs(results_dir, wide):
    """List the runs: id, date, tables with data, GPU, runtime and state."""
    from kit import runs
    click.echo(runs.ls_text(results_dir, wide, say=note))


@cli.command()
@click.argument("run_id", required=False)
@results_option
@wide_option
def show(run_id, results_dir, wide):
    """Summarise a run (default: the latest): what ran, where, how it ended, and where its files are."""
    from kit import runs
    click.echo(runs.show_text(pick(results_dir, run_id), wide))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--tables", metavar="N[,N]", help="The tables the run is for (default: every table whose two arms are there).")
@click.option("--model-a", help="Model A (default: the --model its server was started with, from server-A.log).")
@click.option("--model-b", help="Model B (default: from server-B.log).")
def adopt(run_dir, tables, model_a, model_b):
    """Make RUN_DIR, written by compose.yaml (results/<run-id>/<arm>/r1/) or by `python3 -m kit.workload`,
    a run: each repeat's status.json from its events, and manifest.json. Then `kit table RUN_ID` reads it."""
    from kit import adopt as adopting
    command = ["kit", "adopt", run_dir]
    for name, value in (("--tables", tables), ("--model-a", model_a), ("--model-b", model_b)):
        command += [name, value] if value else []
    manifest = adopting.adopt(run_dir, parse_tables((tables,) if tables else ()), model_a, model_b, command)
    click.echo(adopting.summary(run_dir, manifest))


# -- hosts and images ---------------------------------------------------------------------------------
@cli.command()
@option_fields(*DOCTOR_FIELDS)
@results_option
def doctor(results_dir, **values):
    """Check that a run can start here (the pre-flight of `kit run`); each failed check says what to do."""
    from kit import doctor as checks
    from kit.runtimes import get_runtime
    options = RunOptions(tables=(1,), **values).check()
    found = checks.run_checks(options, results_dir, get_runtime(options, on_build_line=click.echo))
    for check in found:
        click.echo(check.line())
    return 1 if any(c.ok is False for c in found) else 0


@cli.command()
@click.option("--vllm-image", help="Base image (default: vllm/vllm-openai:v0.11.0, the study's).")
@click.option("--vllm-version", help="Shorthand for --vllm-image vllm/vllm-openai:vX.Y.Z.")
@click.option("--rebuild", is_flag=True, help="Build even if an image for this base and code exists.")
def build(vllm_image, vllm_version, rebuild):
    """Build the pinned vLLM image with the kit inside (skipped when it exists)."""
    from kit import image
    click.echo(image.build(vllm_image, vllm_version, rebuild, on_line=click.echo))


@cli.command()
def clean():
    """Stop and remove containers left over from earlier runs (by their sleepkit labels)."""
    from kit.runtimes.docker import DockerRuntime
    removed = DockerRuntime().clean()
    click.echo(f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else ""))


@cli.group()
def models():
    """Models for hosts without a model hub."""


@models.command("twin")
@click.argument("name", type=click.Choice(list(TWINS)))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder for the model.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--tiny", is_flag=True, help="Same architecture, tiny sizes (for tests).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Where to make the weights (same bytes either way)  [default: cuda if there is one]")
def twin(name, out, seed, tiny, device):
    """Write a shape twin: the real architecture and sizes, random weights (needs `pip install '.[twins]'`).

    \b
    qwen3-0.6b           Qwen/Qwen3-0.6B (made on the CPU: its recorded bytes come from the CPU generator)
    phi-3-mini           the language model of microsoft/Phi-3-vision-128k-instruct (no vision tower; CPU)
    qwen3-1.7b ... -32b  Qwen/Qwen3-1.7B, -4B, -8B, -14B, -32B (dense)
    qwen3-coder-30b-a3b  Qwen/Qwen3-Coder-30B-A3B-Instruct (MoE: vLLM needs the MOE=1 overlay offline)
    """
    from kit import twins
    info = twins.write_twin(name, out, seed=seed, tiny=tiny, progress=click.echo, device=device)
    click.echo(f"{out}: {info['params']:,} parameters, digest {info['digest']}")


def main(argv=None):
    """The one edge where errors become one line and an exit status: a command's return value (the verdict of
    `kit doctor` and `kit bundle verify`), a KitError's, click's for bad usage, 130 for Ctrl-C."""
    try:
        return cli.main(args=argv, prog_name="kit", standalone_mode=False) or 0
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "kit"
        click.echo(f"{cmd}: error: {e.format_message()} (see `{cmd} --help`)", err=True)
        return 2
    except KitError as e:
        first, *more = e.lines()
        click.echo(hints.spelled("\n".join([f"kit: error: {first}"] + [f"  {line}" for line in more])), err=True)
        return e.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("aborted", err=True)
        return 130
    except OSError as e:            # a full disk wherever the kit writes (a bundle, tables, figures)
        full = layout.disk_full(e, "kit cannot write")
        if full is e:
            raise
        click.echo(f"kit: error: {full.line()}", err=True)
        return full.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code


main.group = cli        # the command tree, for what walks it without running a command (the help and docs tests)
