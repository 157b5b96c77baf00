"""One line of `kit doctor`: a check that passed, failed (with what to do) or was skipped (with why)."""
from dataclasses import dataclass


@dataclass
class Check:
    name: str
    ok: bool | None          # None: skipped (detail says why)
    detail: str
    fix: str = ""

    def line(self):
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark}  {self.name}: {self.detail}" + (f" -> {self.fix}" if self.ok is False else "")
