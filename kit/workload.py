"""The switching workload of one arm: runs inside the container (or on the host).

    python3 -m kit.workload --arm l1 --out DIR [options]

Starts model A's and model B's servers, runs the arm's sequence (DESIGN.md), writes events.jsonl,
env.json and each server's log into DIR, prints one progress line per event, and exits 1 when the
arm failed (2 on bad usage). Servers are always stopped, also on Ctrl-C or SIGTERM.
Container side: standard library and psutil only.
"""
import argparse
import json
import os
import signal
import sys
import time

from kit import events, memory, scenarios
from kit.engine import Server, ServerError
from kit.sleepcheck import backed_up_count, check_sleep

SEED_POLL_S = 5.0       # the original scripts polled /health every 5 s
POLL_S = 0.02        # readiness poll: bounds the load timing error (DESIGN: 50 ms or faster)


class Interrupted(Exception):
    pass


class Workload:
    def __init__(self, opts):
        self.opts = opts
        self.arm = scenarios.ARMS[opts.arm]
        self.t0 = time.monotonic()
        self.log = events.Writer(os.path.join(opts.out, "events.jsonl"),
                                 run=opts.run_id, arm=opts.arm, repeat=opts.repeat_index)
        self.servers = {}
        self.seed = opts.protocol == "seed"
        self.env = dict(os.environ, **scenarios.SERVER_ENV)

    # -- events --------------------------------------------------------------------------------
    def timed(self, kind, model, rnd, action, server=None, **extra):
        """Run `action()`, timing it, with memory read before and after; write one event."""
        mem_before = self.memory(server)
        start = time.monotonic()
        error, result = None, None
        try:
            result = action()
        except ServerError as e:
            error = str(e)
        duration = time.monotonic() - start
        fields = dict(kind=kind, model=model, round=rnd, start_s=round(start - self.t0, 6),
                      duration_s=round(duration, 6), ok=error is None,
                      error=error.splitlines()[0] if error else None, **extra)
        mem_after = self.memory(server)
        fields.update(gpu_mib_before=mem_before[0], rss_mib_before=mem_before[1],
                      gpu_mib_after=mem_after[0], rss_mib_after=mem_after[1])
        if isinstance(result, dict):
            fields.update(result)
        self.progress(fields)
        if error:
            self.log.write(**fields)
            raise ServerError(error)
        return fields

    def memory(self, server):
        return memory.gpu_used_mib(), server.rss_mib() if server else None

    def progress(self, f):
        state = "ok" if f["ok"] else "FAILED: " + f["error"]
        print(f"{self.opts.arm} {f['kind']:<7} {f['model'] or '-'} round {f['round']} "
              f"{f['duration_s']:9.3f} s  {state}", flush=True)

    # -- steps ---------------------------------------------------------------------------------
    def load(self, model, rnd):
        name = self.opts.model_a if model == "A" else self.opts.model_b
        server = Server(model, name, self.opts.server_cmd, self.arm.server_args(),
                        os.path.join(self.opts.out, f"server-{model}.log"), env=self.env,
                        call_timeout=self.opts.call_timeout)
        self.servers[model] = server

        def start_and_wait():
            server.start()
            server.wait_ready(self.opts.ready_timeout, SEED_POLL_S if self.seed else POLL_S,
                              heartbeat=lambda s: print(f"{self.opts.arm} ... server {model} still "
                                                        f"starting ({s:.0f} s)", flush=True))
        self.log.write(**self.timed("load", model, rnd, start_and_wait, server))
        return server

    def warmup(self, server, rnd):
        action = lambda: {"output_tokens": self.prompt_call(server, scenarios.WARMUP_PROMPT, 1,
                                                           stream=False)[1]}
        self.log.write(**self.timed("warmup", server.label, rnd, action, server))

    def prompt_call(self, server, text, max_tokens, stream=True):
        result = server.chat(text, max_tokens, scenarios.SYSTEM_PROMPT, stream=stream,
                             ignore_eos=self.opts.fixed_output)
        if self.seed:  # the original scripts reset the prefix cache inside the timed prompt
            server.call("POST", "/reset_prefix_cache")
        return result

    def prompt(self, server, rnd):
        def action():
            ttft, tokens = self.prompt_call(server, scenarios.PROMPTS[rnd - 1], self.opts.max_tokens)
            return {"ttft_s": round(ttft, 6) if ttft is not None else None, "output_tokens": tokens}
        self.log.write(**self.timed("prompt", server.label, rnd, action, server))

    def sleep(self, server, rnd):
        level = self.arm.sleep_level
        first = server.label not in self.slept
        backed_before = backed_up_count(server)

        def action():
            if self.seed:
                server.call("POST", "/sleep", {"level": level})   # the original (wrong) request
            else:
                server.call("POST", f"/sleep?level={level}")
        fields = self.timed("sleep", server.label, rnd, action, server, level=level)
        fields["checks"] = check_sleep(server, level, fields, first, backed_before)
        self.slept.append(server.label)
        self.log.write(**fields)

    def wake(self, server, rnd):
        level = self.arm.sleep_level
        parts = {}

        def step(name, fn):
            t = time.monotonic()
            fn()
            parts[name] = round(time.monotonic() - t, 6)

        def action():
            step("wake_up", lambda: server.call("POST", "/wake_up"))
            if level == 2:
                step("reload_weights", lambda: server.call("POST", "/collective_rpc",
                                                           {"method": "reload_weights"}))
                step("reset_prefix_cache", lambda: server.call("POST", "/reset_prefix_cache"))
                if self.arm.warmup:
                    step("warmup", lambda: self.prompt_call(server, scenarios.WARMUP_PROMPT, 1, stream=False))
            return {"parts": parts}
        self.log.write(**self.timed("wake", server.label, rnd, action, server, level=level))

    def stop(self, server, rnd):
        def action():
            parts = {"terminate": round(server.stop(), 6)}
            if self.arm.sleep_level is None and self.baseline_gpu is not None:
                parts["gpu_release"] = round(self.wait_gpu_baseline(), 6)
            return {"parts": parts}
        self.log.write(**self.timed("stop", server.label, rnd, action))
        self.servers.pop(server.label, None)

    def wait_gpu_baseline(self, timeout=120.0, slack_mib=512):
        """No-sleep arm: a stopped server's GPU memory must be back before the next start."""
        t0 = time.monotonic()
        while memory.gpu_used_mib() > self.baseline_gpu + slack_mib:
            if time.monotonic() - t0 > timeout:
                raise ServerError(f"GPU memory did not return to its baseline ({self.baseline_gpu} MiB) "
                                  f"within {timeout:.0f} s of stopping the server")
            time.sleep(0.05)
        return time.monotonic() - t0

    # -- sequences -------------------------------------------------------------------------------
    def run(self):
        self.slept = []
        self.baseline_gpu = memory.gpu_used_mib()
        if self.arm.sleep_level is None:
            self.run_nosleep()
        else:
            self.run_sleep()

    def run_sleep(self):
        a = self.load("A", 0)
        if self.arm.warmup:
            self.warmup(a, 0)
        self.sleep(a, 0)
        b = self.load("B", 0)
        if self.arm.warmup:
            self.warmup(b, 0)
        # seed protocol, level 2: online_sleep2_nosleep.py put A to sleep twice and B never
        self.sleep(a if (self.seed and self.arm.sleep_level == 2) else b, 0)
        for rnd in range(1, scenarios.ROUNDS + 1):
            for server in (a, b):
                self.wake(server, rnd)
                self.prompt(server, rnd)
                if not (rnd == scenarios.ROUNDS and server is b):
                    self.sleep(server, rnd)
        for server in (a, b):
            self.stop(server, scenarios.ROUNDS)

    def run_nosleep(self):
        for rnd in range(1, scenarios.ROUNDS + 1):
            for model in ("A", "B"):
                server = self.load(model, rnd)
                self.prompt(server, rnd)
                self.stop(server, rnd)

    def cleanup(self):
        for server in list(self.servers.values()):
            server.stop()
        self.servers.clear()


def environment(opts):
    """What this workload runs on, for the manifest: versions, GPUs, host->GPU bandwidth."""
    from importlib import metadata
    info = {"python": sys.version.split()[0]}
    for pkg in ("vllm", "torch"):
        try:
            info[pkg + "_version"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg + "_version"] = None
    info["gpus"], info["driver"] = memory.gpus()
    info.update(h2d_probe() if opts.measure_h2d else {"h2d_gbps": None, "cuda_version": None})
    return info


H2D_SCRIPT = r"""
import json, torch
if not torch.cuda.is_available():
    print(json.dumps({"h2d_gbps": None, "cuda_version": torch.version.cuda})); raise SystemExit
n = 1 << 30
h = torch.empty(n, dtype=torch.uint8, pin_memory=True); d = torch.empty(n, dtype=torch.uint8, device="cuda")
for _ in range(3): d.copy_(h, non_blocking=True)
torch.cuda.synchronize(); times = []
for _ in range(10):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); d.copy_(h, non_blocking=True); e.record(); torch.cuda.synchronize()
    times.append(s.elapsed_time(e) / 1e3)
times.sort()
print(json.dumps({"h2d_gbps": round(n / times[len(times) // 2] / 1e9, 2), "cuda_version": torch.version.cuda}))
"""


def h2d_probe():
    """Pinned host->GPU copy bandwidth (1 GiB, median of 10) with torch when present, else None."""
    import subprocess
    try:
        out = subprocess.run([sys.executable, "-c", H2D_SCRIPT], capture_output=True, text=True, timeout=180)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {"h2d_gbps": None, "cuda_version": None}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m kit.workload", description=__doc__.split("\n\n")[0])
    p.add_argument("--arm", required=True, choices=sorted(scenarios.ARMS))
    p.add_argument("--out", required=True, help="folder for events.jsonl, env.json and server logs")
    p.add_argument("--run-id", default="adhoc")
    p.add_argument("--repeat-index", type=int, default=1)
    p.add_argument("--model-a", default=scenarios.MODEL_A)
    p.add_argument("--model-b", default=scenarios.MODEL_B)
    p.add_argument("--server-cmd", default="python3 -m vllm.entrypoints.openai.api_server")
    p.add_argument("--protocol", choices=["corrected", "seed"], default="corrected")
    p.add_argument("--fixed-output", action="store_true", help="send ignore_eos so every prompt gives max_tokens")
    p.add_argument("--max-tokens", type=int, default=scenarios.MAX_TOKENS)
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--call-timeout", type=float, default=300.0)
    p.add_argument("--measure-h2d", action="store_true", help="measure pinned host->GPU bandwidth first")
    return p.parse_args(argv)


def _raise_interrupt(signum, frame):
    raise Interrupted(f"signal {signum}")


def main(argv=None):
    opts = parse_args(argv)
    os.makedirs(opts.out, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    with open(os.path.join(opts.out, "env.json"), "w") as f:
        json.dump(environment(opts), f, indent=1, sort_keys=True)
    work = Workload(opts)
    error = None
    try:
        work.run()
    except ServerError as e:
        error = str(e)
    except Interrupted as e:
        error = f"interrupted ({e})"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        work.cleanup()
    total = dict(kind="total", model=None, round=0, start_s=0.0,
                 duration_s=round(time.monotonic() - work.t0, 6), ok=error is None,
                 error=error.splitlines()[0] if error else None)
    work.log.write(**total)
    work.progress(total)
    work.log.close()
    if error:
        print(f"{opts.arm}: arm failed: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
