#!/usr/bin/env python3
"""Write docs/cli.md, the command reference, from click's `--help` of every command of `kit`.

    python3 scripts/cli_reference.py [--check]        (make docs)

The commands are found by walking the `kit` group, so a new command or subcommand appears without editing
this file. The help is rendered at a fixed width, so the page does not depend on the terminal that made it.
--check writes nothing and exits 1 when the committed page differs (tests/test_docs.py checks the same).
"""
import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "cli.md"
WIDTH = 110                                      # the kit group's max_content_width
HEADER = """# `kit` command reference

<!-- Generated from `kit --help` by scripts/cli_reference.py: edit the commands' help, then run `make docs`. -->

Every command of the `kit` CLI with its `--help`, as printed at a width of {width} columns. The make targets
wrap these commands (`make help`); the README and the other pages show them in use.
"""


def commands(command, ctx):
    """(context, command) for the group and every command below it, depth first, in the group's order."""
    yield ctx, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from commands(sub, click.Context(sub, info_name=name, parent=ctx))


def render():
    from kit.cli import cli
    top = click.Context(cli, info_name="kit", terminal_width=WIDTH, max_content_width=WIDTH,
                        help_option_names=["-h", "--help"])
    found = list(commands(cli, top))
    index = ", ".join(f"[`{ctx.command_path}`](#{anchor(ctx)})" for ctx, _ in found)
    parts = [HEADER.format(width=WIDTH), index + "\n"]
    for ctx, command in found:
        parts.append(f"## {ctx.command_path}\n\n```text\n{command.get_help(ctx)}\n```\n")
    return "\n".join(parts)


def anchor(ctx):
    """The heading's anchor as GitHub makes it: lower case, spaces to hyphens."""
    return ctx.command_path.lower().replace(" ", "-")


def main(argv):
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(REPO)} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(OUT.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
