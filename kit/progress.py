"""What a user sees while a run runs.

On a terminal: a live line per running job (lane, job, step, elapsed, ETA from the previous repeat or
the published numbers) and what is waiting, with each finished step and job printed above it (rich).
Elsewhere (CI, a log file): the same finished steps and jobs as plain lines, and a line when a job starts
and every 30 s while a server is still starting. Each job's failure is printed once, when it ends.
"""
import sys
import threading
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from kit.workload import progress as workload_progress

WIDTH = 80


def clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, expected=None, tty=None, out=None):
        """expected(job) -> (seconds or None, where that estimate comes from)."""
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.console = Console(file=self.out, highlight=False, soft_wrap=True)
        self.expected = expected or (lambda job: (None, None))
        self.lock = threading.Lock()
        self.running = {}      # lane label -> {"job", "started", "step", "step_started", "eta", "eta_from"}
        self.waiting = []
        self.live = None
        self.stopped = None    # the signal that interrupted the run

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self):
        if self.tty:
            self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True,
                             get_renderable=self._render)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)
            self.live = None

    def say(self, text):
        """A line for the record (printed above the live lines on a terminal)."""
        with self.lock:
            self.console.print(Text(text))

    # -- events from the scheduler and the runtimes ---------------------------------------------
    def plan(self, jobs):
        with self.lock:
            self.waiting = [j.key for j in jobs]

    def started(self, job, lane):
        eta, source = self.expected(job)
        with self.lock:
            if job.key in self.waiting:
                self.waiting.remove(job.key)
            self.running[lane.label] = {"job": job.key, "started": time.monotonic(), "step": "starting",
                                        "step_started": time.monotonic(), "eta": eta, "eta_from": source}
        if not self.tty:
            self.say(f"[{lane.label}] {job.key}: started" + (f" (expected {clock(eta)} from {source})" if eta else ""))

    def interrupted(self, received):
        with self.lock:
            self.stopped = received

    def line(self, job, lane, text):
        if self.stopped:
            return
        parsed = workload_progress.parse(text)
        prefix = f"[{lane.label}] {job.key}"
        if parsed is None:
            if text.strip():
                self.say(f"{prefix}: {text}")
            return
        with self.lock:
            state = self.running.get(lane.label)
            if state and parsed["state"] == "start":
                state["step"] = f"{parsed['kind']} {parsed['model'] or '-'} round {parsed['round']}"
                state["step_started"] = time.monotonic()
        if parsed["state"] == "done" or (parsed["state"] == "wait" and not self.tty):
            self.say(f"{prefix}: {text.strip()}")

    def ended(self, job, lane, status, detail=""):
        with self.lock:
            self.running.pop(lane.label, None)
        if status.get("ok"):
            self.say(f"[{lane.label}] {job.key}: ok in {clock(status['seconds'])}")
        elif self.stopped:
            self.say(f"[{lane.label}] {job.key}: interrupted ({self.stopped})")
        else:
            self.say(f"[{lane.label}] {job.key}: FAILED (exit {status.get('exit_code')}): {status.get('error')}"
                     + (f"\n{detail}" if detail else ""))

    def retired(self, lane, reason):
        self.say(f"[{lane.label}] not used any more: {reason}")

    # -- the live lines -------------------------------------------------------------------------
    def _render(self):
        now = time.monotonic()
        lines = Text()
        with self.lock:
            for label, s in sorted(self.running.items()):
                elapsed = now - s["started"]
                head = f"[{label}] {s['job']}: {s['step']} {clock(now - s['step_started'])} (job {clock(elapsed)}"
                eta = f", ETA ~{clock(s['eta'] - elapsed)}" if s["eta"] and s["eta"] > elapsed else ""
                line = f"{head}{eta} from {s['eta_from']})" if eta else f"{head})"
                lines.append(fit(line if len(line) <= WIDTH else f"{head}{eta})") + "\n")
            if self.waiting:
                lines.append(fit(f"waiting: {', '.join(self.waiting)}") + "\n", style="dim")
        return lines


def fit(line, width=WIDTH):
    """A live line cut to the terminal's usual width (a wrapped live line garbles the display)."""
    return line if len(line) <= width else line[:width - 3] + "..."
