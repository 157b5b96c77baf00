"""The switching workload of one arm repeat: runs inside the container (or on the host).

    python3 -m kit.workload --arm l1 --out DIR [options]     (kit/workload/options.py lists them)

Starts model A's and model B's servers, executes the arm's steps (kit/workload/steps.py), writes
events.jsonl, env.json and each server's log into DIR, prints one progress line per step
(kit/workload/progress.py), and exits 1 when the arm failed (2 on bad usage). Servers are always
stopped, also on Ctrl-C or SIGTERM. Container side: standard library and psutil only.
"""
import json
import os
import signal
import sys
import threading
import time
import traceback

from kit.workload import events, memory, progress, scenarios, serverlog
from kit.workload.compilecache import ColdCaches, cache_env
from kit.workload.engine import Server, ServerError
from kit.workload.options import ArmOptions
from kit.workload.sleepcheck import backed_up_count, check_sleep
from kit.workload.steps import steps, unit_name

PRIMING = "priming.jsonl"
SEED_POLL_S = 5.0     # the original scripts polled /health every 5 s
POLL_S = 0.02         # readiness poll: bounds the load timing error to 20 ms (`make bench` measures it)
HEARTBEAT_S = 30.0


class Interrupted(Exception):
    pass


class Workload:
    def __init__(self, opts):
        self.opts = opts
        self.arm = scenarios.ALL_ARMS[opts.arm]
        self.seed = opts.protocol == "seed"
        self.t0 = time.monotonic()
        self.log = events.Writer(os.path.join(opts.out, "events.jsonl"), run=opts.run_id,
                                 arm=opts.unit or unit_name(opts.arm, opts.protocol, opts.script), repeat=opts.repeat)
        self.servers = {}
        self.slept = set()
        self.env = dict(os.environ, **scenarios.SERVER_ENV)
        self.cold = ColdCaches() if opts.cold_cache else None
        self.cold_dirs = {}      # model -> the empty cache folder of its running server (--cache cold)
        self.priming = False
        self.baseline_gpu = None

    def run(self):
        self.t0 = time.monotonic()         # the environment probe before this is not part of the total
        self.baseline_gpu = memory.gpu_used_mib()
        if self.opts.prime:
            self.prime()
            self.t0 = time.monotonic()     # the arm's clock starts after the priming
        actions = {"load": self.load, "warmup": self.warmup, "sleep": self.sleep, "wake": self.wake,
                   "prompt": self.prompt, "stop": self.stop}
        for step in steps(self.arm, self.opts.protocol, self.opts.script):
            print(progress.start(step.kind, step.model, step.round), flush=True)
            actions[step.kind](step.model, step.round)

    # -- events --------------------------------------------------------------------------------
    def timed(self, kind, model, rnd, action, **extra):
        """Run `action()`, timing it, with memory read before and after; return the event's fields.
        A failed action writes its event at once and raises ServerError."""
        server = self.servers.get(model)
        mem_before = self.memory(server)
        start = time.monotonic()
        error, result = None, None
        try:
            result = action()
        except ServerError as e:
            error = str(e)
        duration = time.monotonic() - start
        mem_after = self.memory(self.servers.get(model))
        fields = dict(kind=kind, model=model, round=rnd, start_s=round(start - self.t0, 6),
                      duration_s=round(duration, 6), ok=error is None,
                      error=error.splitlines()[0] if error else None, **extra,
                      gpu_mib_before=mem_before[0], rss_mib_before=mem_before[1],
                      gpu_mib_after=mem_after[0], rss_mib_after=mem_after[1])
        fields.update(result if isinstance(result, dict) else {})
        if not self.priming or error:
            print(progress.done(kind, model, rnd, duration, fields["error"]), flush=True)
        if error:
            self.log.write(**fields)
            raise ServerError(error)
        return fields

    def memory(self, server):
        return memory.gpu_used_mib(), server.rss_mib() if server else None

    # -- priming (--cache warm) -----------------------------------------------------------------
    def prime(self):
        """Start and stop each model's server (both, or a sweep arm's one) once so its compiled graphs are in
        the cache; the loads and stops go to priming.jsonl, never into the arm's events."""
        measured = self.log
        self.log = events.Writer(os.path.join(self.opts.out, PRIMING), **measured.common)
        self.priming = True
        try:
            for model in dict.fromkeys(step.model for step in steps(self.arm, self.opts.protocol, self.opts.script)):
                print(progress.start("prime", model, 0), flush=True)
                t = time.monotonic()
                self.load(model, 0)
                self.stop(model, 0)
                if self.baseline_gpu is not None:   # the measured loads start on a GPU as empty as before
                    self.wait_gpu_baseline()
                print(progress.done("prime", model, 0, time.monotonic() - t), flush=True)
        except ServerError as e:
            raise ServerError(f"while priming the compile cache: {e}") from None
        finally:
            self.priming = False
            self.log.close()
            self.log = measured

    # -- steps ---------------------------------------------------------------------------------
    def load(self, model, rnd):
        name = self.opts.model_a if model == "A" else self.opts.model_b
        env = self.env
        if self.cold:
            self.cold_dirs[model] = self.cold.new()
            env = dict(env, **cache_env(self.cold_dirs[model]))
        server = Server(model, name, self.opts.server_cmd, self.arm.server_args(),
                        os.path.join(self.opts.out, f"server-{model}.log"), env=env,
                        call_timeout=self.opts.call_timeout)
        self.servers[model] = server

        def start_and_wait():
            server.start()
            server.wait_ready(self.opts.ready_timeout, SEED_POLL_S if self.seed else POLL_S, HEARTBEAT_S,
                              heartbeat=lambda s: print(progress.wait("load", model, rnd, s), flush=True))
        fields = self.timed("load", model, rnd, start_and_wait)
        # read after the timing: what the server's log says this load was made of
        fields["breakdown"] = serverlog.breakdown(server.log_segment(), server.first_output_s)
        self.log.write(**fields)

    def warmup(self, model, rnd):
        server = self.servers[model]
        action = lambda: {"output_tokens": self.chat(server, scenarios.WARMUP_PROMPT, 1, stream=False)[1]}
        self.log.write(**self.timed("warmup", model, rnd, action))

    def chat(self, server, text, max_tokens, stream=True):
        result = server.chat(text, max_tokens, scenarios.SYSTEM_PROMPT, stream=stream,
                             ignore_eos=self.opts.fixed_output)
        if self.seed:  # the original scripts reset the prefix cache inside the timed prompt
            server.call("POST", "/reset_prefix_cache")
        return result

    def prompt(self, model, rnd):
        server = self.servers[model]

        def action():
            ttft, tokens = self.chat(server, scenarios.PROMPTS[rnd - 1], self.opts.max_tokens)
            return {"ttft_s": round(ttft, 6) if ttft is not None else None, "output_tokens": tokens}
        self.log.write(**self.timed("prompt", model, rnd, action))

    def sleep(self, model, rnd):
        server, level = self.servers[model], self.arm.sleep_level
        backed_before = backed_up_count(server)

        def action():
            if self.seed:
                server.call("POST", "/sleep", {"level": level})   # the original (wrong) request
            else:
                server.call("POST", f"/sleep?level={level}")
        fields = self.timed("sleep", model, rnd, action, level=level)
        fields["checks"] = check_sleep(server, level, fields, model not in self.slept, backed_before)
        self.slept.add(model)
        self.log.write(**fields)

    def wake(self, model, rnd):
        server, level = self.servers[model], self.arm.sleep_level
        parts = {}

        def part(name, fn):
            t = time.monotonic()
            fn()
            parts[name] = round(time.monotonic() - t, 6)

        def action():
            part("wake_up", lambda: server.call("POST", "/wake_up"))
            if level == 2:
                part("reload_weights", lambda: server.call("POST", "/collective_rpc", {"method": "reload_weights"}))
                part("reset_prefix_cache", lambda: server.call("POST", "/reset_prefix_cache"))
                if self.arm.warmup:
                    part("warmup", lambda: self.chat(server, scenarios.WARMUP_PROMPT, 1, stream=False))
            return {"parts": parts}
        self.log.write(**self.timed("wake", model, rnd, action, level=level))

    def stop(self, model, rnd):
        server = self.servers[model]

        def action():
            parts = {"terminate": round(server.stop(), 6)}
            if self.arm.sleep_level is None and self.baseline_gpu is not None:
                parts["gpu_release"] = round(self.wait_gpu_baseline(), 6)
            return {"parts": parts}
        fields = self.timed("stop", model, rnd, action)
        self.servers.pop(model, None)
        if model in self.cold_dirs:
            self.cold.remove(self.cold_dirs.pop(model))
        self.log.write(**fields)

    def wait_gpu_baseline(self, timeout=120.0, slack_mib=512):
        """No-sleep arm: a stopped server's GPU memory must be back before the next start."""
        t0 = time.monotonic()
        while memory.gpu_used_mib() > self.baseline_gpu + slack_mib:
            if time.monotonic() - t0 > timeout:
                raise ServerError(f"GPU memory did not return to its baseline ({self.baseline_gpu} MiB) "
                                  f"within {timeout:.0f} s of stopping the server")
            time.sleep(0.05)
        return time.monotonic() - t0

    def cleanup(self):
        for server in list(self.servers.values()):
            server.stop()
        self.servers.clear()
        if self.cold:
            self.cold.remove_all()


def environment(opts):
    """What this workload runs on, for the manifest: versions, GPUs, host->GPU bandwidth."""
    from importlib import metadata
    info = {"python": sys.version.split()[0],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
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
    """Pinned host->GPU copy bandwidth (1 GiB, median of 10) with torch when present, else None.
    torch runs in a child process, so the workload itself never imports it."""
    import subprocess
    try:
        out = subprocess.run([sys.executable, "-c", H2D_SCRIPT], capture_output=True, text=True, timeout=180)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {"h2d_gbps": None, "cuda_version": None}


def stop_when_stdin_closes():
    """A thread that sends this process SIGTERM when its standard input reaches EOF (its holder died)."""
    def watch():   # os.read, not sys.stdin: a daemon thread must hold no interpreter lock at exit
        while os.read(0, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _raise_interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv=None):
    opts = ArmOptions.parse(sys.argv[1:] if argv is None else argv)
    if not opts.out:
        print("python3 -m kit.workload: error: --out DIR is required", file=sys.stderr)
        return 2
    os.makedirs(opts.out, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    if opts.stop_on_stdin_eof:
        stop_when_stdin_closes()
    work = Workload(opts)
    error = None
    try:
        env = environment(opts)            # the host->GPU probe takes seconds: a Ctrl-C may come here
        with open(os.path.join(opts.out, "env.json"), "w") as f:
            json.dump(env, f, indent=1, sort_keys=True)
        work.run()
    except ServerError as e:
        error = str(e)
    except Interrupted as e:
        error = f"interrupted ({e})"
    except Exception as e:   # a kit bug, or server output no check foresaw: the arm fails and says so
        traceback.print_exc()
        error = f"workload error: {type(e).__name__}: {e}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        work.cleanup()
    duration = time.monotonic() - work.t0
    first_line = error.splitlines()[0] if error else None
    work.log.write(kind="total", model=None, round=0, start_s=0.0, duration_s=round(duration, 6),
                   ok=error is None, error=first_line)
    print(progress.done("total", None, 0, duration, first_line), flush=True)
    work.log.close()
    if error:
        print(f"arm failed: {error}", file=sys.stderr, flush=True)
        return 1
    return 0
