"""The workload's progress lines: written by the workload, parsed by the host's live display.

    start load A round 0              a step begins
    wait  load A round 0 30 s         a server is still starting (every 30 s)
    done  load A round 0 61.234 s ok  a step ended (or: ... FAILED: <first line of the error>)

Plain text, one line each, so workload.log reads well too. Container side: standard library only.
"""
import re

LINE = re.compile(r"^(start|wait|done)\s+(\w+) (A|B|-) round (\d+)(?: ([\d.]+) s)?(?: (ok|FAILED: .*))?$")


def start(kind, model, rnd):
    return f"start {kind} {model or '-'} round {rnd}"


def wait(kind, model, rnd, seconds):
    return f"wait  {kind} {model or '-'} round {rnd} {seconds:.0f} s"


def done(kind, model, rnd, seconds, error=None):
    return f"done  {kind} {model or '-'} round {rnd} {seconds:.3f} s " + (f"FAILED: {error}" if error else "ok")


def parse(line):
    """{"state", "kind", "model", "round", "seconds", "error"} of a progress line, or None for other output."""
    m = LINE.match(line.strip())
    if not m:
        return None
    state, kind, model, rnd, seconds, result = m.groups()
    return {"state": state, "kind": kind, "model": None if model == "-" else model, "round": int(rnd),
            "seconds": float(seconds) if seconds else None,
            "error": result[len("FAILED: "):] if result and result.startswith("FAILED") else None}
