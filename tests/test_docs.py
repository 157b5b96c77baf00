"""Every `kit ...` and `make ...` command line in the README's (and docs/*.md's) code blocks runs as printed,
in the style of sqlite-utils' test_docs.py: against a copy of the committed reference runs, or the vLLM
test double (`make demo`). A line whose comment says it needs a GPU, Docker or Slurm is checked for syntax
only: click parses a kit line (the command, its options and arguments), `make -n` a make line.

Placeholders in the synopsis lines stand for reference runs (RUN_ID, RUN_A, RUN_B, RUN), a reference bundle
(FILE) or an image (TAG); `[X]` is written X. Inline commands (`kit ...` in the text) that name a reference
run are run too.
"""
import re
import shlex
import shutil
import subprocess

import click
import pytest

from conftest import ROOT
from kit.cli import main

pytestmark = pytest.mark.e2e
# docs/cli.md is click's help, not command lines to run; test_cli checks that it is current
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")]
REFERENCE = ROOT / "results" / "reference"
SYNTAX_ONLY = re.compile(r"needs (a GPU|Docker|Slurm)")
COMMAND = re.compile(r"^(\.venv/bin/kit|kit|make) ")
PLACEHOLDERS = {"RUN_ID": "h200-vllm0.24.0-twins-l1-cold", "RUN": "h200-vllm0.24.0-twins-host",
                "RUN_A": "h200-vllm0.24.0-twins-host", "RUN_B": "h200-vllm0.24.0-twins-docker",
                "FILE": "results/reference/h200-vllm0.24.0-twins-l1-cold.tar.gz", "TAG": "sleepkit:latest"}


def fenced_lines(path):
    """(line, comment) of every command line in the file's code blocks."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", path.read_text(), re.M | re.S):
        for line in block.splitlines():
            if COMMAND.match(line.strip()):
                command, _, comment = line.strip().partition("  #")
                found.append((command.strip(), comment.strip()))
    return found


def inline_lines(path):
    """`kit ...` spans of the text that name a reference run: concrete commands, not fragments."""
    runs = {p.name for p in REFERENCE.iterdir() if p.is_dir()}
    spans = re.findall(r"`(kit [^`]+)`", path.read_text())
    return [(" ".join(s.split()), "") for s in spans if set(s.split()) & runs or "results/reference" in s]


def commands():
    return [pytest.param(line, comment, id=f"{path.name}: {line}") for path in DOCS
            for line, comment in fenced_lines(path) + inline_lines(path)]


def argv(line):
    words = shlex.split(line)
    return [PLACEHOLDERS.get(w.strip("[]"), w.strip("[]")) if w.startswith("[") or w in PLACEHOLDERS else w
            for w in words]


def parse_kit(args):
    """click's parse of a kit command line, down to the (sub)command: unknown options, missing arguments and
    bad choices fail here, without running anything."""
    ctx = main.group.make_context("kit", list(args))
    command, rest = main.group, unparsed(ctx)
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, list(rest), parent=ctx)
        rest = unparsed(ctx)


def unparsed(ctx):
    """A group's subcommand and its arguments (click 8.2 keeps the subcommand in _protected_args)."""
    return [*getattr(ctx, "_protected_args", []), *ctx.args]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A folder holding a copy of the reference runs, as a fresh clone's results/ does."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(REFERENCE, root / "results" / "reference")
    return root


def test_the_docs_have_commands():
    found = commands()
    assert len(found) >= 20 and any("make demo" in c.values[0] for c in found)


@pytest.mark.parametrize("line, comment", commands())
def test_command_runs_as_printed(line, comment, clone, capsys, monkeypatch, tmp_path):
    words = argv(line)
    if "&&" in words:                                      # a shell line: its first command is checked
        words = words[:words.index("&&")]
    if words[0] == "make":
        target = [w for w in words[1:] if "=" not in w]
        if SYNTAX_ONLY.search(comment) or target != ["demo"]:
            r = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            return
        r = subprocess.run(words + [f"DEMO={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "test double (no GPU, no vLLM)" in r.stdout, r.stdout + r.stderr
        return
    args = words[1:]
    parse_kit(args)
    if SYNTAX_ONLY.search(comment):
        return
    monkeypatch.chdir(clone)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))           # where kit plot puts a reference's figures
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, f"{line}: {err}"
    assert out.strip(), line


@pytest.mark.parametrize("line", ["kit table --no-such-option", "kit run --all --gpus", "kit models twin nosuch --out x",
                                  "kit nosuch"])
def test_the_syntax_check_catches_a_broken_line(line):
    with pytest.raises(click.UsageError):
        parse_kit(argv(line)[1:])
