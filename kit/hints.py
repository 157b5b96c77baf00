"""The commands the kit prints for the user to run next, spelled so that they run as printed in the way
the user started the kit: through make (the Makefile sets KIT_VIA_MAKE=1 for the kit it runs), as `kit`
found on PATH, or else by the full path of this kit's executable (`.venv/bin/kit` is not on PATH).
"""
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from kit import layout

VIA_MAKE = "KIT_VIA_MAKE"
MAKE_RESULTS = "results"          # the Makefile's RESULTS, which it always passes


def via_make(env=None):
    return (os.environ if env is None else env).get(VIA_MAKE) == "1"


def kit_command(argv0=None, env=None):
    """`kit` when the `kit` on PATH is this one; else this kit's full path, or `python -m kit`."""
    env = os.environ if env is None else env
    argv0 = argv0 or sys.argv[0]
    if Path(argv0).name != "kit":             # python -m kit, or in-process (tests)
        return f"{shlex.quote(sys.executable)} -m kit"
    mine = Path(argv0).absolute()
    on_path = shutil.which("kit", path=env.get("PATH", os.defpath))
    if on_path and Path(on_path).resolve() == mine.resolve():
        return "kit"
    return shlex.quote(str(mine))


def spelled(text, env=None):
    """Every `kit ...` command quoted in text, spelled as kit_command() (for error hints written as `kit ls`)."""
    kit = kit_command(env=env)
    return text if kit == "kit" else re.sub(r"`kit ", lambda _: f"`{kit} ", text)


def results_flag(results_dir, env=None):
    """` --results-dir DIR`, unless DIR is where `kit` typed in this shell looks (KIT_RESULTS_DIR, else results)."""
    default = (os.environ if env is None else env).get("KIT_RESULTS_DIR") or layout.RESULTS
    return "" if str(results_dir) == default else f" --results-dir {shlex.quote(str(results_dir))}"


def resume_command(run_id, results_dir, env=None, sweep=False):
    """The command that finishes the run: `kit sweep --resume` for a sweep run (kit sweep), as the docs give
    it, else `kit run --resume`; through make, `make resume` (its `kit run --resume` finishes a sweep too)."""
    if via_make(env):
        return f"make resume RUN={run_id}" + ("" if str(results_dir) == MAKE_RESULTS
                                               else f" RESULTS={shlex.quote(str(results_dir))}")
    return (f"{kit_command(env=env)} {'sweep' if sweep else 'run'} --resume {run_id} "
            f"--results-dir {shlex.quote(str(results_dir))}")


def doctor_command(runtime, env=None):
    if via_make(env):
        return "make doctor" + ("" if runtime == "docker" else f" RUNTIME={runtime}")
    return f"{kit_command(env=env)} doctor" + ("" if runtime == "docker" else f" --runtime {runtime}")
