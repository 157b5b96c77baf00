"""kit: run the vLLM Sleep Mode study's five tables and keep the results.

Bad input gets one line on stderr and exit status 2.
"""
import json
import os
import re
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
        if int(t) not in numbers:
            numbers.append(int(t))
    return numbers


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
@click.option("--arm", "only_arms", multiple=True, type=click.Choice(list(scenarios.ARMS)),
              help="Run only this arm (repeatable) instead of whole tables; tables show the others as missing.")
@click.option("--runtime", type=click.Choice(["docker", "local"]), default="docker", show_default=True,
              help="docker: one fresh GPU container per arm; local: the workload runs on this host.")
@click.option("--model-a", default=scenarios.MODEL_A, show_default=True, help="Model A: HF name or local dir.")
@click.option("--model-b", default=scenarios.MODEL_B, show_default=True, help="Model B: HF name or local dir.")
@click.option("--repeat", default=1, show_default=True, type=int, help="Repeats of every arm.")
@results_option
@click.option("--run-id", help="Name the run (default: the UTC time and tables, e.g. 20261128-031024-t1).")
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Finish an interrupted run (skips complete arms).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the server commands; start nothing.")
@click.option("--protocol", type=click.Choice(["corrected", "seed"]), default="corrected", show_default=True,
              help="seed: replay the original scripts' requests (JSON-body sleep level, 5 s readiness polling, "
                   "prefix-cache reset inside the prompt time, A put to sleep twice in level-2 runs).")
@click.option("--fixed-output", is_flag=True, help="Send ignore_eos so every prompt yields exactly max_tokens.")
@click.option("--server-cmd", default="python3 -m vllm.entrypoints.openai.api_server", show_default=True,
              help="Server command; the kit appends --model, --host, --port and the study's arguments.")
@click.option("--ready-timeout", default=900.0, show_default=True, type=float, help="Seconds a server may take to start.")
@click.option("--call-timeout", default=300.0, show_default=True, type=float, help="Seconds one HTTP call may take.")
@click.option("--cache", type=click.Choice(["cold", "shared"]), default="cold", show_default=True,
              help="Compile caches: cold = empty per arm (fair); shared = one persistent cache.")
@click.option("--image", help="docker: use this existing image, skip the build.")
@click.option("--vllm-image", help="docker: build the kit image on this vLLM image (default: the study's v0.11.0).")
@click.option("--gpus", default="all", show_default=True, help="docker: GPUs for the containers: all, none, or 0,1.")
@click.option("--hf-cache", default="~/.cache/huggingface", show_default=True, help="docker: host HF cache to mount.")
def run(tables, all_tables, only_arms, **opts):
    """Run the arms that TABLES need (1-5, or --all) and print the tables."""
    from kit import run as runner
    from kit.image import ImageError
    if opts["resume_id"] and (tables or all_tables or only_arms):
        raise BadInput("--resume takes the tables of the run it finishes; give no table numbers")
    if only_arms and (tables or all_tables):
        raise BadInput("give tables or --arm, not both")
    if only_arms:
        numbers = [n for n, t in scenarios.TABLES.items() if set(t.arms) & set(only_arms)]
    else:
        numbers = [] if opts["resume_id"] else parse_tables(tables, all_tables)
    if opts["repeat"] < 1:
        raise BadInput(f"--repeat must be at least 1 (got {opts['repeat']})")
    opts["tables"] = numbers
    opts["arms"] = list(dict.fromkeys(only_arms))
    arms = opts["arms"] or scenarios.arms_for(numbers)
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
    try:
        run_dir, manifest = open_run(results, opts, numbers, arms, runtime)
    except ImageError as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
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


def open_run(results, opts, numbers, arms, runtime):
    """A new run directory with its manifest, or the manifest of the run to resume (options taken from it)."""
    from kit import run as runner
    if opts["resume_id"]:
        run_dir = results / opts["resume_id"]
        if not (run_dir / "manifest.json").exists():
            raise BadInput(f"cannot resume {opts['resume_id']!r}: no such run in {results}")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        opts.update({k: manifest["options"][k] for k in ("repeat", "protocol", "fixed_output", "server_cmd")},
                    model_a=manifest["models"]["A"]["name"], model_b=manifest["models"]["B"]["name"],
                    tables=manifest["options"]["tables"])
        # the manifest says where and how the rest of the run happened
        manifest.setdefault("resumes", []).append(
            {"at": runner.now(), "command": ["kit"] + sys.argv[1:], "runtime": runtime.describe()})
        return run_dir, manifest
    run_id = opts["run_id"] or runner.new_run_id(results, numbers)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id):
        raise BadInput(f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-'")
    if (results / run_id).exists():
        raise BadInput(f"run {run_id!r} exists in {results}; runs are never overwritten (resume it with --resume)")
    manifest = runner.new_manifest(run_id, opts, arms, runtime)
    (results / run_id).mkdir()
    runner.write_json(results / run_id / "manifest.json", manifest)
    return results / run_id, manifest


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def make_runtime(opts):
    from kit.runtimes import get_runtime
    if opts["runtime"] == "local":
        return get_runtime("local", cache=opts["cache"])
    try:
        return get_runtime("docker", image=opts["image"], vllm_image=opts["vllm_image"], gpus=opts["gpus"],
                           hf_cache=opts["hf_cache"], cache=opts["cache"])
    except ValueError as e:
        raise BadInput(str(e)) from None


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


@cli.command()
@click.argument("run_id", required=False)
@results_option
@click.option("--table", "tables", multiple=True, help="Only these tables (default: the run's).")
def plot(run_id, results_dir, tables):
    """Draw a run's figures (timelines, switch/prompt bars, memory) as PNG under <run>/figures/."""
    from kit import plot as plots
    run_dir = pick_run(results_dir, run_id)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    numbers = parse_tables(tables, False) if tables else manifest["options"]["tables"]
    for path in plots.plot_run(run_dir, numbers):
        click.echo(str(path))


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, metavar="[RUN_ID] | verify FILE")
@results_option
@click.option("--allow-incomplete", is_flag=True, help="Bundle an interrupted run (the manifest says so).")
def bundle(args, results_dir, allow_incomplete):
    """Archive a run as results/<run-id>.tar.gz with SHA256SUMS, or check one.

    \b
      kit bundle               the latest run
      kit bundle RUN_ID        that run
      kit bundle verify FILE   checksums, schemas, tables re-rendered from the events
    """
    from kit import bundle as bundles
    from kit import report
    if args[:1] == ("verify",):
        if len(args) != 2:
            raise BadInput("kit bundle verify takes one FILE (a .tar.gz made by kit bundle)")
        if not Path(args[1]).is_file():
            raise BadInput(f"no bundle file {args[1]}")
        problems = bundles.verify_bundle(args[1])
        for problem in problems:
            click.echo(f"{args[1]}: {problem}")
        click.echo(f"{args[1]}: {'FAILED' if problems else 'ok'}")
        sys.exit(1 if problems else 0)
    if len(args) > 1:
        raise BadInput("kit bundle takes at most one RUN_ID")
    run_dir = pick_run(results_dir, args[0] if args else None)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    report.write_tables(run_dir, manifest["options"]["tables"])   # never bundle stale tables
    try:
        path = bundles.make_bundle(run_dir, allow_incomplete=allow_incomplete, render=bundles.render_all)
    except bundles.BundleError as e:
        raise BadInput(str(e)) from None
    click.echo(str(path))


@cli.command()
@click.argument("first")
@click.argument("second")
@click.option("--table", "number", type=click.IntRange(1, 5), help="Which table (default: every table both have).")
@click.option("--format", "fmt", type=click.Choice(["github", "plain", "json"]), default="github", show_default=True)
def compare(first, second, number, fmt):
    """Set one table from two runs side by side (run dirs or bundles; SECOND may be `published`)."""
    from kit import report
    from kit.events import SchemaError
    try:
        a = report.load_run_any(first)
        b = "published" if second == "published" else report.load_run_any(second)
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot read a run from {first!r} or {second!r}: {e}") from None
    except SchemaError as e:
        raise BadInput(f"malformed events: {e}") from None
    numbers = [number] if number else report.tables_in(a)
    for n in numbers:
        click.echo(report.render_compare(report.compare(a, b, n), fmt))


@cli.group()
def models():
    """Models for hosts without a model hub."""


@models.command("twin")
@click.argument("name", type=click.Choice(["qwen3-0.6b", "phi-3-mini"]))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder for the model.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--tiny", is_flag=True, help="Same architecture, tiny sizes (for tests).")
def twin(name, out, seed, tiny):
    """Write a shape twin: the real architecture and sizes, random weights (needs `pip install '.[twins]'`).

    \b
    qwen3-0.6b   Qwen/Qwen3-0.6B
    phi-3-mini   the language model of microsoft/Phi-3-vision-128k-instruct (no vision tower)
    """
    from kit import twins
    if Path(out).exists() and any(Path(out).iterdir()):
        raise BadInput(f"{out} is not empty; remove it or give another --out")
    try:
        info = twins.make_twin(name, out, seed=seed, tiny=tiny, progress=click.echo)
    except twins.TwinDependencyError as e:
        raise BadInput(str(e)) from None
    (Path(out) / "sleepkit-twin.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    click.echo(f"{out}: {info['params']:,} parameters, digest {info['digest']}")


@cli.command()
@click.option("--vllm-image", help="Base image (default: vllm/vllm-openai:v0.11.0, the study's).")
@click.option("--vllm-version", help="Shorthand for --vllm-image vllm/vllm-openai:vX.Y.Z.")
@click.option("--rebuild", is_flag=True, help="Build even if the tag exists.")
def build(vllm_image, vllm_version, rebuild):
    """Build the pinned vLLM image with the kit inside (skipped when its tag exists)."""
    from kit import image
    if vllm_image and vllm_version:
        raise BadInput("give --vllm-image or --vllm-version, not both")
    if vllm_version:
        if not re.fullmatch(r"\d+\.\d+\.\d+", vllm_version):
            raise BadInput(f"--vllm-version must look like 0.11.0 (got {vllm_version!r})")
        vllm_image = f"vllm/vllm-openai:v{vllm_version}"
    try:
        info = image.build_image(vllm_image, vllm_version, rebuild=rebuild, on_line=click.echo)
    except image.ImageError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{info['tag']} ({'built' if info['built'] else 'exists, not rebuilt'}) {info['id']}")


@cli.command()
@results_option
@click.option("--runtime", type=click.Choice(["docker", "local"]), default="docker", show_default=True)
@click.option("--model-a", default=scenarios.MODEL_A, show_default=True)
@click.option("--model-b", default=scenarios.MODEL_B, show_default=True)
@click.option("--hf-cache", default="~/.cache/huggingface", show_default=True)
def doctor(results_dir, runtime, model_a, model_b, hf_cache):
    """Check that a run can start here; each failed check says what to do. Exit 0 only if it can."""
    from kit.doctor import run_checks
    checks = run_checks(results_dir, runtime=runtime, models=(model_a, model_b), hf_cache=hf_cache)
    for check in checks:
        click.echo(check.line())
    sys.exit(0 if all(c.ok for c in checks) else 1)


@cli.command()
def clean():
    """Stop and remove containers left over from earlier runs (by their sleepkit labels)."""
    from kit.image import ImageError
    from kit.runtimes.docker import DockerRuntime
    try:
        removed = DockerRuntime().clean()
    except ImageError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else ""))


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
