"""Jobs on lanes: each lane (a GPU, or a Slurm slot) runs one job at a time, jobs are taken in the order
given (longest first), and a lane found unusable before a job is retired with its reason.

    Scheduler(lanes, run_job, is_busy, events).run(jobs) -> {job: result}   (jobs never run are absent)

run_job(job, lane) runs in the lane's thread and returns the job's result (an exception it raises
becomes the result); is_busy(lane) says why a lane cannot take a job now (None if it can). `events` gets ("start", job, lane),
("end", job, lane, result), ("retire", None, lane, reason) as they happen. Two jobs never share a lane.
"""
import threading
import time


class Scheduler:
    def __init__(self, lanes, run_job, is_busy=None, events=None, settle_s=30.0, poll_s=0.5):
        self.lanes = list(lanes)
        self.run_job = run_job
        self.is_busy = is_busy or (lambda lane: None)
        self.events = events or (lambda *e: None)
        self.settle_s, self.poll_s = settle_s, poll_s
        self.lock = threading.Lock()
        self.queue, self.results, self.retired = [], {}, {}
        self.stopping = threading.Event()

    def waiting(self):
        with self.lock:
            return list(self.queue)

    def run(self, jobs):
        """Run every job; returns when all are done, every lane is retired, or stop() was called.
        KeyboardInterrupt in the calling thread propagates (the caller stops the runtime, then join())."""
        self.queue = list(jobs)
        self.done = [threading.Event() for _ in self.lanes]
        self.threads = [threading.Thread(target=self._lane_until_done, args=(lane, done), name=f"lane-{i}",
                                         daemon=True) for i, (lane, done) in enumerate(zip(self.lanes, self.done))]
        for t in self.threads:
            t.start()
        self.join()
        return self.results

    def join(self, timeout=None):
        """Wait for every lane to finish. Waits on events, not Thread.join: a Ctrl-C that interrupts
        CPython 3.11's Thread.join can mark a thread that is still running as stopped (its
        _wait_for_tstate_lock releases the lock the running thread holds), and a second join then
        returns at once, before the job has ended and been recorded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for done in self.done:
            while not done.wait(0.2):       # short waits: Ctrl-C reaches the main thread at once
                if deadline is not None and time.monotonic() > deadline:
                    return False
        return True

    def stop(self):
        """Take no more jobs; the caller stops the running ones through the runtime."""
        self.stopping.set()

    def retire_all(self, reason):
        """No lane takes another job, for a reason that holds for all of them (a full disk); the jobs
        running now end as they do."""
        self.stopping.set()
        for lane in self.lanes:
            with self.lock:
                new = lane not in self.retired
                self.retired.setdefault(lane, reason)
            if new:
                self.events("retire", None, lane, reason)

    def _usable(self, lane, settle):
        """None if the lane can take a job; else the reason, after waiting up to `settle` s for it to clear
        (a GPU may take a moment to release the memory of the job before)."""
        deadline = time.monotonic() + settle
        while True:
            reason = self.is_busy(lane)
            if reason is None or time.monotonic() >= deadline or self.stopping.is_set():
                return reason
            time.sleep(self.poll_s)

    def _lane_until_done(self, lane, done):
        try:
            self._lane(lane)
        finally:
            done.set()

    def _lane(self, lane):
        ran = False
        while not self.stopping.is_set():
            with self.lock:
                if not self.queue:
                    return
            reason = self._usable(lane, self.settle_s if ran else 0.0)
            if reason is not None:
                with self.lock:
                    self.retired[lane] = reason
                self.events("retire", None, lane, reason)
                return
            with self.lock:
                if not self.queue or self.stopping.is_set():
                    return
                job = self.queue.pop(0)
            self.events("start", job, lane)
            try:
                result = self.run_job(job, lane)
            except Exception as e:  # noqa: BLE001 - a job's crash is its result; the lane goes on
                result = e
            ran = True
            with self.lock:
                self.results[job] = result
            self.events("end", job, lane, result)
