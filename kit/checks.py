"""One line of `kit doctor`: a check that passed, failed (with what to do) or was skipped (with why); and what
the checks of kit/doctor.py and of the runtimes share."""
import shlex
from dataclasses import dataclass
from pathlib import Path

GB = 1e9


@dataclass
class Check:
    name: str
    ok: bool | None          # None: skipped (detail says why)
    detail: str
    fix: str = ""

    def line(self):
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark}  {self.name}: {self.detail}" + (f" -> {self.fix}" if self.ok is False else "")


def runs_vllm(options):
    """Is the server vLLM's (`python3 -m vllm.entrypoints...` or `vllm serve`), not a stand-in?"""
    argv = shlex.split(options.server_cmd)
    return any(a.startswith("vllm.entrypoints") for a in argv) or Path(argv[0]).name == "vllm"
