"""`make bench`: the kit's own timing error and overhead, measured against the vLLM test double.

Every arm runs once on the double (known, distinct delays per model). The double logs how long it
spent on each request, and on its start since the kernel started its process; that is the true
duration. Printed per event kind: measured - true seconds (median, max); per arm the kit's overhead:
arm wall time minus the double's own time. Not a pass/fail test: a report.
"""
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from conftest import kit, run_args, double_config, only_run  # noqa: E402
from kit.workload import events, scenarios  # noqa: E402


# what the double did for each event kind, in order: its server-side DOUBLE-TIMING lines
OPS = {"load": ["startup"], "warmup": ["POST /v1/chat/completions"], "prompt": ["POST /v1/chat/completions"],
       "sleep": ["POST /sleep"], "stop": ["shutdown"], "wake": ["POST /wake_up"]}
L2_WAKE = ["POST /wake_up", "POST /collective_rpc", "POST /reset_prefix_cache", "POST /v1/chat/completions"]


def server_timings(log):
    """The double's own durations, in order, without the readiness polls."""
    found = re.findall(r"^DOUBLE-TIMING (\S+) (\S+) ([\d.]+)$", log.read_text(), re.M)
    return [(f"{a} {b}" if b != "-" else a, float(t)) for a, b, t in found if b != "/health"]


def true_seconds(e, level, queue):
    """Pop the server-side durations that make up this event; their sum is the true duration."""
    total = 0.0
    for op in (L2_WAKE if (e["kind"] == "wake" and level == 2) else OPS[e["kind"]]):
        name, seconds = queue.pop(0)
        assert name == op, (e, name, op)
        total += seconds
    return total


def main():
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        # weights_mib=1: the double's own backup copy would otherwise count as kit error
        r = kit("run", "--all", *run_args(results, double_config(marker="bench", weights_mib=1), "--fixed-output"),
                timeout=600)
        if r.returncode != 0:
            sys.exit(f"bench run failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        run = only_run(results)
        errors, overhead = {}, {}
        for arm in scenarios.ARMS:
            level = scenarios.ARMS[arm].sleep_level
            evs = events.read(run / arm / "r1" / "events.jsonl")
            queues = {m: server_timings(run / arm / "r1" / f"server-{m}.log") for m in "AB"}
            true_total = 0.0
            for e in evs:
                if e["model"] is None:
                    continue
                want = true_seconds(e, level, queues[e["model"]])
                true_total += want
                errors.setdefault(e["kind"], []).append(e["duration_s"] - want)
            total = next(e for e in evs if e["kind"] == "total")["duration_s"]
            overhead[arm] = (total, total - true_total)
    print("timing error per event kind (measured - true, seconds)")
    print(f"{'event':<8} {'n':>3} {'median':>8} {'max':>8}")
    for kind, errs in errors.items():
        print(f"{kind:<8} {len(errs):>3} {statistics.median(errs):8.4f} {max(errs):8.4f}")
    print("\nkit overhead per arm (arm wall time - the double's own time, seconds)")
    for arm, (total, extra) in overhead.items():
        print(f"{arm:<10} wall {total:7.3f}  overhead {extra:7.3f}")
    worst = max(max(v) for v in errors.values())
    print(f"\nworst event error {worst:.4f} s (target <= 0.05 s; the original scripts' polling: up to 5 s)")


if __name__ == "__main__":
    main()
