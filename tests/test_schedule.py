"""The scheduler: jobs in order, one at a time per lane, busy or failing GPUs left out, crashes and stops."""
import threading
import time

from kit.schedule import Scheduler


class Recorder:
    """run_job that records which lane ran what, when, and can hold jobs until released."""

    def __init__(self, seconds=0.05, fail=()):
        self.seconds, self.fail = seconds, set(fail)
        self.spans, self.lock = [], threading.Lock()

    def __call__(self, job, lane):
        t0 = time.monotonic()
        time.sleep(self.seconds)
        with self.lock:
            self.spans.append((lane, job, t0, time.monotonic()))
        if job in self.fail:
            raise RuntimeError(f"{job} crashed")
        return {"ok": True}


def test_jobs_run_in_order_never_two_on_a_lane():
    rec = Recorder()
    jobs = [f"j{i}" for i in range(7)]
    out = Scheduler(["gpu0", "gpu1", "gpu2"], rec).run(jobs)
    assert set(out) == set(jobs)
    starts = sorted(rec.spans, key=lambda s: s[2])
    assert [s[1] for s in starts][:3] == ["j0", "j1", "j2"]            # taken in the order given
    for lane in ("gpu0", "gpu1", "gpu2"):
        mine = sorted((a, b) for ln, _, a, b in rec.spans if ln == lane)
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(mine, mine[1:]))   # exclusive


def test_one_lane_runs_jobs_one_after_another():
    rec = Recorder(0.01)
    Scheduler(["only"], rec).run(["a", "b", "c"])
    assert [s[1] for s in rec.spans] == ["a", "b", "c"]


def test_a_busy_gpu_is_reported_and_its_jobs_go_elsewhere():
    rec, events = Recorder(), []
    busy = lambda lane: "GPU 1 has 2.0 of 80.0 GiB free" if lane == "gpu1" else None
    out = Scheduler(["gpu0", "gpu1"], rec, is_busy=busy, events=lambda *e: events.append(e)).run(["a", "b", "c"])
    assert set(out) == {"a", "b", "c"} and {s[0] for s in rec.spans} == {"gpu0"}
    assert ("retire", None, "gpu1", "GPU 1 has 2.0 of 80.0 GiB free") in events


def test_a_gpu_failing_mid_run_leaves_the_rest_to_the_others():
    rec, state = Recorder(), {"gpu1_jobs": 0}

    def busy(lane):
        return "NVML cannot read GPU 1" if lane == "gpu1" and state["gpu1_jobs"] >= 1 else None

    def run_job(job, lane):
        if lane == "gpu1":
            state["gpu1_jobs"] += 1
        return rec(job, lane)
    sched = Scheduler(["gpu0", "gpu1"], run_job, is_busy=busy, settle_s=0.2, poll_s=0.05)
    out = sched.run([f"j{i}" for i in range(6)])
    assert set(out) == {f"j{i}" for i in range(6)}
    assert sum(1 for s in rec.spans if s[0] == "gpu1") == 1 and sched.retired == {"gpu1": "NVML cannot read GPU 1"}


def test_every_lane_gone_leaves_jobs_not_run():
    sched = Scheduler(["gpu0"], Recorder(), is_busy=lambda lane: "busy")
    assert sched.run(["a", "b"]) == {} and sched.waiting() == ["a", "b"]


def test_a_crashing_job_is_its_own_result_and_the_lane_goes_on():
    out = Scheduler(["gpu0"], Recorder(0.01, fail={"b"})).run(["a", "b", "c"])
    assert isinstance(out["b"], RuntimeError) and out["a"] == out["c"] == {"ok": True}


def test_stop_takes_no_more_jobs():
    started = threading.Event()
    release = threading.Event()

    def run_job(job, lane):
        started.set()
        release.wait(5)
        return {"ok": True}
    sched = Scheduler(["gpu0"], run_job)
    runner = threading.Thread(target=sched.run, args=(["a", "b", "c"],))
    runner.start()
    assert started.wait(5)
    sched.stop()
    release.set()
    runner.join(5)
    assert list(sched.results) == ["a"]
