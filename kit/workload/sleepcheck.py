"""Sleep is checked, not trusted: did the GPU memory drop, and did the server really sleep at the level asked?

Level 1 copies the weights to a pinned host buffer (host RSS grows by about the weight size on a server's
first sleep; vLLM keeps the buffer after wake, so later sleeps show no growth); level 2 drops them.
The engine also logs "N GiB is backed up in CPU" on every sleep (docs/vllm-versions.md has the wording
of each vLLM version). A check that cannot run here is recorded as skipped (ok: null) with the reason.
Container side: standard library only.
"""
import time

WEIGHTS_RE = r"Model loading took ([\d.]+) GiB"
BACKED_UP_RE = r"([\d.]+) GiB is backed up in CPU"
GPU_DROP_MIB = 256


def check_sleep(server, level, event, first_sleep, backed_lines_before, log_wait=3.0):
    """The checks of one sleep event: gpu_dropped, rss_level<N> (first sleep only), engine_log."""
    checks = [_gpu_dropped(event)]
    if first_sleep:
        checks.append(_rss_level(server, level, event))
    backed = _new_log_values(server, backed_lines_before, log_wait)
    if backed is None:
        checks.append(_check("engine_log", None, "skipped: no 'GiB is backed up in CPU' line in the server log"))
    else:
        ok = backed > 0 if level == 1 else backed == 0
        checks.append(_check("engine_log", ok, f"engine: {backed:.2f} GiB backed up in CPU"))
    return checks


def _gpu_dropped(event):
    before, after = event["gpu_mib_before"], event["gpu_mib_after"]
    if before is None or after is None:
        return _check("gpu_dropped", None, "skipped: no GPU memory reading here (no NVML, no nvidia-smi)")
    return _check("gpu_dropped", before - after >= GPU_DROP_MIB, f"GPU used {before} -> {after} MiB")


def _rss_level(server, level, event):
    name = f"rss_level{level}"
    weights = server.log_matches(WEIGHTS_RE)
    rss_before, rss_after = event["rss_mib_before"], event["rss_mib_after"]
    if not weights:
        return _check(name, None, "skipped: no 'Model loading took ... GiB' line in the server log")
    if rss_before is None or rss_after is None:
        return _check(name, None, "skipped: the server's host RSS could not be read")
    weights_mib = float(weights[-1]) * 1024
    grew = rss_after - rss_before
    ok = grew >= 0.9 * weights_mib if level == 1 else grew < 0.25 * weights_mib
    return _check(name, ok, f"host RSS +{grew} MiB on first sleep, weights {weights_mib:.0f} MiB")


def backed_up_count(server):
    return len(server.log_matches(BACKED_UP_RE))


def _new_log_values(server, count_before, wait):
    """The engine logs from another process: give its line a moment to land (bounded)."""
    deadline = time.monotonic() + wait
    while True:
        found = server.log_matches(BACKED_UP_RE)
        if len(found) > count_before:
            return float(found[-1])
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _check(name, ok, detail):
    return {"check": name, "ok": ok if ok is None else bool(ok), "detail": detail}
