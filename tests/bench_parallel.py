"""`make bench` (second part): all five arms on one GPU lane, then on two, against the vLLM test double.

The double needs no GPU; `--gpus 0` / `--gpus 0,1` give the run one or two lanes, and each server is
started with CUDA_VISIBLE_DEVICES of its lane (the double logs what it got). Printed: the wall times and
their ratio, whether every server saw exactly one GPU id and no lane ran two jobs at once, and the
interference: per event kind, the median duration on two lanes over the median on one. A report, not
a pass/fail test (tests/test_e2e_local.py asserts the same properties on a smaller run).
"""
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from conftest import double_config, kit, only_run, run_args  # noqa: E402
from kit.workload import events  # noqa: E402


def when(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def one_run(results, gpus, repeat):
    t0 = time.monotonic()
    r = kit("run", "--all", *run_args(results, double_config(marker=f"bench-par-{gpus}", weights_mib=1),
                                      "--fixed-output"), "--gpus", gpus, "--repeat", repeat, timeout=900)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"bench run on --gpus {gpus} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return only_run(results), wall


def check_lanes(run):
    """(every server saw one id, its lane's; no lane ran two jobs at once) from the logs and the manifest."""
    manifest = json.loads((run / "manifest.json").read_text())
    one_id = True
    for job in manifest["jobs"]:
        for model in "AB":
            seen = re.findall(r"DOUBLE-NOTE CUDA_VISIBLE_DEVICES=(\S+)",
                              (run / job["unit"] / f"r{job['repeat']}" / f"server-{model}.log").read_text())
            one_id &= bool(seen) and all(s == job["gpu"]["id"] for s in seen) and "," not in "".join(seen)
    exclusive = True
    for lane in {j["lane"] for j in manifest["jobs"]}:
        spans = sorted((when(j["started"]), when(j["ended"])) for j in manifest["jobs"] if j["lane"] == lane)
        exclusive &= all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    return one_id, exclusive, sorted({j["lane"] for j in manifest["jobs"]})


def durations(run):
    found = {}
    for path in sorted(run.glob("*/r*/events.jsonl")):
        for e in events.read(path):
            if e["kind"] != "total":
                found.setdefault(e["kind"], []).append(e["duration_s"])
    return found


def compare(repeat):
    with tempfile.TemporaryDirectory() as tmp:
        serial, t1 = one_run(Path(tmp) / "one", "0", repeat)
        parallel, t2 = one_run(Path(tmp) / "two", "0,1", repeat)
        lanes = {name: check_lanes(run) for name, run in (("1 lane", serial), ("2 lanes", parallel))}
        d1, d2 = durations(serial), durations(parallel)
    print(f"all five arms x {repeat} repeat(s) on the vLLM test double (--fixed-output)")
    print(f"  --gpus 0    wall {t1:6.1f} s")
    print(f"  --gpus 0,1  wall {t2:6.1f} s   ratio {t2 / t1:.3f} (target <= 0.600)")
    for name, (one_id, exclusive, used) in lanes.items():
        print(f"  {name}: lanes used {', '.join(used)}; each server saw one GPU id, its lane's: {one_id}; "
              f"no lane ran two jobs at once: {exclusive}")
    return d1, d2


def main():
    compare(1)     # five jobs on two lanes: one lane runs three of them
    d1, d2 = compare(2)
    print("\ninterference (2 repeats): median event duration on 2 lanes / on 1 lane")
    print(f"{'event':<8} {'n':>3} {'1 lane s':>9} {'2 lanes s':>10} {'ratio':>6}")
    for kind in d1:
        a, b = statistics.median(d1[kind]), statistics.median(d2[kind])
        print(f"{kind:<8} {len(d1[kind]):>3} {a:9.4f} {b:10.4f} {b / a:6.2f}")


if __name__ == "__main__":
    main()
