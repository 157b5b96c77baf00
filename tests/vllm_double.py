#!/usr/bin/env python3
"""Test double of vLLM's OpenAI-compatible server (stdlib only, no GPU).

Launch exactly like the real server, with double options in front:
  python3 tests/vllm_double.py [--config JSON_OR_PATH] --model M --host H --port P
      [--enable-sleep-mode] [--max-model-len N] [--max-num-seqs N] [...ignored vLLM args]

Config key "vllm_version": "0.24.0" (default) or "0.11.0" (the study's version) picks whose
behaviour to follow where the two differ (docs/vllm-versions.md has the item-by-item table).
Sources: the release sdists vllm-0.24.0.tar.gz (git ee0da84ab) and vllm-0.11.0.tar.gz (git
f71952c1c, the v0.11.0 tag), whose files and line numbers are those of the tags. Older
facts carry the commit prefix they were first read at, in brackets; all were re-checked
against the 0.24.0 sdist.

 F1 Dev routes (/sleep /wake_up /is_sleeping /collective_rpc /reset_prefix_cache) exist
    only with env VLLM_SERVER_DEV_MODE=1, else 404 {"detail":"Not Found"} (the path is not
    registered; FastAPI's default): 0.24.0 openai/api_server.py:197 build_app() ->
    serve/__init__.py:35 register_vllm_dev_api_routers; 0.11.0 openai/api_server.py:965
    (routes defined at import under "if envs.VLLM_SERVER_DEV_MODE:"). Wrong method: 405.
 F2 /sleep: level = query_params.get("level", "1"); the body is never read; 200 with an
    empty body. 0.24.0 serve/dev/sleep/api_router.py:21-29 also reads mode (default
    "abort"); 0.11.0 api_server.py:1001-1008 has no mode. A non-integer level: 0.24.0 ->
    400 JSON (ValueError via the Exception handler, serve/utils/server_utils.py:381);
    0.11.0 -> 500 text/plain "Internal Server Error" (no handler for ValueError).
    /wake_up: tags = query_params.getlist("tags"), [] -> None (all): 0.24.0 L32-42,
    0.11.0 api_server.py:1010-1020. /is_sleeping -> {"is_sleeping": bool}: 0.24.0 L45-48;
    0.11.0 api_server.py:1022-1026 also logs "check whether the engine is sleeping".
 F3 0.24.0: EngineCore.sleep() pauses the scheduler first ("All pause modes queue new
    adds"); mode "abort" aborts in-flight requests (finish_reason "abort"), "wait" lets
    them drain, "keep" freezes them; wake_up() resumes only when all tags are awake;
    is_sleeping = paused or executor sleeping: v1/engine/core.py:722-819 [00080ee1].
    => a chat request sent while asleep is NOT answered 503: it waits (no response;
    streaming gets 200 headers only) and is served after /wake_up. The 503
    "ModelSleepingError" exists only in an unmerged doc [39a39ca8].
    0.11.0 has no pause: EngineCore.sleep() = model_executor.sleep(level)
    (v1/engine/core.py:377-384), AsyncLLM.sleep() resets the prefix cache first
    (v1/engine/async_llm.py:635-637), nothing stops the scheduler. A request that reaches
    the model while the CuMem pool is unmapped faults ("CUDA error: an illegal memory
    access", vLLM issues #15483, #28714); the engine core logs "EngineCore encountered a
    fatal error." (core.py:710) and dies (EngineDeadError, v1/engine/exceptions.py:8-13).
    A streamed request (200 already sent) gets `data: {"error": {"message": "EngineCore
    encountered an issue. ...", "type": "BadRequestError", "code": 400}}` + `data: [DONE]`
    (serving_chat.py:1143-1149); a non-streamed one, and any chat request after the death
    (serving_chat.py:184), gets 500 {"error": {..., "type": "Internal Server Error",
    "code": 500}} (api_server.py:609-613 turns every exception into HTTPException). The
    watchdog (launcher.py:105-127, every 5 s) then shuts the server down (exit 0); until
    then /health is 503 (api_server.py:345-352) and an engine call (/sleep, /wake_up, ...)
    gets 500 with an empty body and makes the server exit at once (launcher.py:155-164).
    Without --enable-sleep-mode nothing is unmapped, so 0.11.0 serves the request.
 F4 Worker.sleep offloads tag "weights" at level 1, nothing at other levels; no
    --enable-sleep-mode check. Without the flag the CuMem pool is unused
    (_maybe_get_memory_pool_context) so /sleep still answers 200, is_sleeping turns true
    and "sleep freed 0.00 GiB": 0.24.0 v1/worker/gpu_worker.py:165-185, 0.11.0
    gpu_worker.py:98-149. 0.24.0 level 0 = pause only; 0.11.0 level 0 reaches the
    executor and discards everything.
 F5 Log lines (INFO unless said; file:line as vLLM prints it):
    "CuMemAllocator: sleep freed %.2f GiB memory in total, of which %.2f GiB is backed up
    in CPU and the rest %.2f GiB is discarded directly." same wording, cumem.py:206
    (0.24.0) / cumem.py:228 (0.11.0), from the EngineCore process. Worker: "Sleep mode
    freed %s GiB memory, %s GiB memory is still in use." gpu_worker.py:181 (0.24.0,
    format_gib = str(round(x, 2))) / "%.2f ... %.2f" gpu_worker.py:117 (0.11.0).
    Executor: "It took %.6f seconds to fall asleep." / "... to wake up tags %s." /
    WARNING "Executor is already sleeping." / "Executor is not sleeping.":
    v1/executor/abstract.py:327/345/320/333 (0.24.0), executor/executor_base.py:
    189/205/182/194 (0.11.0). "Model loading took %s GiB and %.6f seconds"
    v1/worker/gpu/model_runner.py:302 (0.24.0, the V2 runner used for Qwen3/Llama; the
    V1 runner says "... %s GiB memory and ..." at gpu_model_runner.py:5255) / "Model
    loading took %.4f GiB and %.6f seconds" v1/worker/gpu_model_runner.py:2653 (0.11.0).
    "Resetting prefix cache..." serve/dev/cache/api_router.py:38 / "Resetting prefix
    cache with specific None..." api_server.py:996. "Successfully reset prefix cache"
    block_pool.py:685 / :378 (WARNING "Failed to reset prefix cache because some blocks
    (%d) are not freed yet" when requests hold blocks). Version: 0.11.0 "vLLM API server
    version 0.11.0" api_server.py:1839; 0.24.0 prints it in an ASCII banner
    (serve/utils/api_utils.py:339 "... version 0.24.0"); the double prints the 0.11.0
    wording for both.
 F6 /collective_rpc: JSON body "method" required (400 via HTTPException: {"error":
    {"message": "Missing 'method' in request body", "type": "Bad Request", ...}}), "args",
    "kwargs", "timeout" optional; answers {"results": [...]} (reload_weights on TP=1 ->
    [null]): 0.24.0 serve/dev/rpc/api_router.py:23-54, 0.11.0 api_server.py:1028-1054
    (same code). An engine-side failure (unknown method): 0.24.0 -> 500 JSON error;
    0.11.0 -> 500 text/plain. /reload_weights exists in neither. /reset_prefix_cache:
    POST -> 200 empty in both (0.24.0 cache/api_router.py:20-43, query
    reset_running_requests/reset_external; 0.11.0 api_server.py:987-999, query device).
 F7 /health -> 200 empty body, 503 only on EngineDeadError: 0.24.0 serve/instrumentator/
    health.py:22-33, 0.11.0 api_server.py:345-352. Sleeping does not change it.
 F8 Errors: {"error": {"message", "type", "param", "code": <http status int>}} in both
    (0.24.0 openai/engine/protocol.py:60-68, 0.11.0 openai/protocol.py:101-109).
    Unknown model: 404 NotFoundError, param "model" (0.24.0 serve/engine/serving.py:61)
    / param null (0.11.0 serving_engine.py:484). max_tokens too large: 0.24.0
    renderers/params.py:208-219 ("max_tokens=N cannot be greater than ...", param
    "max_tokens") and :420-433 (prompt + max_tokens > max_model_len, param
    "input_tokens"); 0.11.0 serving_engine.py:681-688 ("'max_tokens' or
    'max_completion_tokens' is too large: ...", param null).
 F9 Chat stream (0.24.0 openai/chat_completion/serving.py:409-816, 0.11.0
    openai/serving_chat.py:478-1149, same structure): the first engine output yields a
    chunk with delta {"role":"assistant","content":""} and "prompt_token_ids": null
    (0.24.0 also "prompt_text": null); then one chunk per output (choice with
    "token_ids": null); the last content chunk carries finish_reason + stop_reason; with
    stream_options.include_usage a chunk with "choices": [] and usage (0.24.0 also
    "system_fingerprint": "vllm-0.24.0-<hash8>", serve/utils/fingerprint.py; without
    include_usage 0.24.0 puts it on the finishing chunk; 0.11.0 never sends it); then
    "data: [DONE]\\n\\n". Headers go out before any engine output (StreamingResponse).
    Non-streamed: ChatCompletionResponse.model_dump(), all fields (0.11.0
    protocol.py:1830-1888; 0.24.0 chat_completion/protocol.py:57-135, where an empty
    tool_calls is dropped and reasoning_content became reasoning).
 F10 GET /version -> {"version": "<vllm version>"}: both.
 F11 Engine start-up lines and the compile cache (docs/vllm-versions.md, "Loads and the compile
    cache"): "Model loading took ...", "Using cache directory: <VLLM_CACHE_ROOT>/torch_compile_cache/
    <hash>/rank_0_0/backbone for vLLM's torch.compile", then with an empty folder "Compiling a graph
    for compile range (1, 4096) takes X s" (0.11.0: "... for dynamic shape takes X s") and the
    folder's vllm_compile_cache.py written, else "Directly load the compiled graph(s) for compile
    range (1, 4096) from the cache, took X s"; "torch.compile took X s in total" (0.11.0 "takes"),
    "Graph capturing finished in N secs, took X GiB", "init engine (profile, create kv cache, warmup
    model) took X s (compilation: Y s)" (0.11.0: "... took X seconds"). <hash> changes with the
    server args that enter vLLM's key (COMPILE_KEY_ARGS, = kit/workload/serverlog.py's). Every
    number is the double's own measured phase (delays "weights", "compile_miss", "compile_hit",
    "graphs"), so the parts add up within the load the kit measures.

Double-only behaviour: one stdout line "DOUBLE-REQUEST <METHOD> <path?query> <compact json
body or ->" per request before handling; "DOUBLE-NOTE CUDA_VISIBLE_DEVICES=<value or unset>"
at start-up; other "DOUBLE-NOTE ..." and "DOUBLE-FAULT ..." lines; "DOUBLE-TIMING ..." lines;
garbage output ("!" tokens, never EOS) after a level-2 sleep + wake until collective_rpc
reload_weights. Delay "watchdog" (default 5 s, 0.11.0 launcher.py:111) is how long a 0.11.0
double lives on after its engine died, unless an engine call ends it sooner.
"""
import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

T0 = time.monotonic()
VERSIONS = ("0.11.0", "0.24.0")
DEFAULT_VERSION = "0.24.0"
NATURAL_LEN = 17  # tokens a reply has when EOS is honoured (the last one is EOS)
DEFAULT_DELAYS = {"startup": 0.2, "first_token": 0.02, "token": 0.002,
                  "sleep_1": 0.05, "sleep_2": 0.03, "wake": 0.03,
                  "reload": 0.05, "reset": 0.01, "shutdown": 0.05, "watchdog": 5.0,
                  "pin_1": 0.0}
EVENTS = ("startup", "sleep", "wake", "reload", "reset", "prompt")
ACTIONS = ("exit", "hang", "error500", "never_ready")
ENGINE_DEAD = ("EngineCore encountered an issue. See stack trace (above) for the "
               "root cause.")  # 0.11.0 v1/engine/exceptions.py:12
# where each log line comes from, as vLLM prints it ([file:line]), per version (F5)
SRC = {
    "0.11.0": {"load": "gpu_model_runner.py:2653", "cumem": "cumem.py:228",
               "worker": "gpu_worker.py:117", "asleep": "executor_base.py:189",
               "awake": "executor_base.py:205", "already": "executor_base.py:182",
               "not_sleeping": "executor_base.py:194", "tag": "executor_base.py:199",
               "wake_api": "api_server.py:1015", "reset_api": "api_server.py:996",
               "is_sleeping_api": "api_server.py:1024", "dev": "api_server.py:966",
               "reset_ok": "block_pool.py:378", "reset_fail": "block_pool.py:366",
               "reload": "gpu_model_runner.py:2705", "version": "api_server.py:1839",
               "start": "api_server.py:1912"},
    "0.24.0": {"load": "model_runner.py:302", "cumem": "cumem.py:206",
               "worker": "gpu_worker.py:181", "asleep": "abstract.py:327",
               "awake": "abstract.py:345", "already": "abstract.py:320",
               "not_sleeping": "abstract.py:333", "tag": "abstract.py:338",
               "wake_api": "api_router.py:38", "reset_api": "api_router.py:38",
               "is_sleeping_api": None, "dev": "__init__.py:36",
               "reset_ok": "block_pool.py:685", "reset_fail": "block_pool.py:667",
               "reload": "gpu_model_runner.py:5433", "version": "api_utils.py:339",
               "start": "api_server.py:581"},
}
_print_lock = threading.RLock()  # re-entrant: the SIGTERM handler logs, maybe inside a log() call


def log(line):
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def info(src, msg, level="INFO"):
    log(f"{level} {time.strftime('%m-%d %H:%M:%S')} [{src}] {msg}")


def vinfo(key, msg, level="INFO"):
    """A log line whose [file:line] depends on the vLLM version followed."""
    info(SRC[OPTS.version][key], msg, level)


def v11():
    return OPTS.version == "0.11.0"


def gib(mib):
    return f"{mib / 1024:.2f}"


def format_gib(mib):
    """0.24.0 vllm/utils/mem_utils.py:30: str(round(GiB, 2)); 0.11.0 uses %.2f."""
    return gib(mib) if v11() else f"{round(mib / 1024, 2)}"


# ---------------------------------------------------------------- config ---
def load_config(text):
    if not text:
        return {}
    if text.lstrip().startswith("{"):
        return json.loads(text)
    with open(text) as f:
        return json.load(f)


def check_fault(f):
    on, action = f.get("on"), f.get("action")
    if on not in EVENTS or action not in ACTIONS:
        raise ValueError(f"bad fault {f}: on in {EVENTS}, action in {ACTIONS}")
    if (action == "never_ready") != (on == "startup") and action != "exit" \
            and action != "hang":
        raise ValueError(f"bad fault {f}: never_ready only with on=startup, "
                         "and error500 is not a startup action")
    if int(f.get("nth", 1)) < 1:
        raise ValueError(f"bad fault {f}: nth is 1-based")


def resolve(cfg, model):
    """Merge defaults, top level and the first matching models entry."""
    delays = dict(DEFAULT_DELAYS, **cfg.get("delays", {}))
    weights = cfg.get("weights_mib", 64)
    kv = cfg.get("kv_cache_mib", 256)
    for key, sub in cfg.get("models", {}).items():
        if key in model:
            delays.update(sub.get("delays", {}))
            weights = sub.get("weights_mib", weights)
            kv = sub.get("kv_cache_mib", kv)
            break
    faults = [f for f in cfg.get("faults", []) if f.get("model", "") in model]
    for f in faults:
        check_fault(f)
    version = cfg.get("vllm_version", DEFAULT_VERSION)
    if version not in VERSIONS:
        raise ValueError(f"vllm_version {version!r}: one of {VERSIONS}")
    return delays, weights, kv, faults, version


def parse_args(argv):
    p = argparse.ArgumentParser(description="vLLM server test double")
    p.add_argument("--config", default="")
    p.add_argument("--model", default="facebook/opt-125m")
    p.add_argument("--served-model-name", nargs="+", default=None)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--enable-sleep-mode", action="store_true")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--quantization", default=None)
    opts, unknown = p.parse_known_args(argv)
    opts.unknown = unknown
    opts.name = (opts.served_model_name or [opts.model])[0]
    try:
        cfg = load_config(opts.config)
        opts.delays, opts.weights_mib, opts.kv_mib, faults, opts.version = \
            resolve(cfg, opts.model)
    except (ValueError, OSError) as e:
        p.error(f"--config: {e}")
    opts.faults = Faults(faults)
    # 0.24.0 system_fingerprint "vllm-<version>-<hash8 of the config>" (F9)
    key = repr((opts.model, opts.max_model_len, opts.quantization, opts.enable_sleep_mode))
    opts.fingerprint = f"vllm-{opts.version}-{zlib.crc32(key.encode()):08x}"
    return opts


class Faults:
    def __init__(self, faults):
        self.faults, self.counts, self.lock = faults, {}, threading.Lock()

    def hit(self, event):
        """Count one occurrence of event; return the fault action due, if any."""
        with self.lock:
            n = self.counts[event] = self.counts.get(event, 0) + 1
        for f in self.faults:
            if f["on"] == event and int(f.get("nth", 1)) == n:
                return f["action"]
        return None


def die_or_hang(action, event, delay):
    """exit: die mid-request after half the op's delay; hang: never return."""
    log(f"DOUBLE-FAULT {action} on {event}")
    if action == "exit":
        time.sleep(delay / 2)
        info("core.py", "EngineCore encountered a fatal error.", "ERROR")
        sys.stdout.flush()
        os._exit(1)
    while True:
        time.sleep(3600)


# ---------------------------------------------------------------- engine ---
class Engine:
    """Scheduler pause + executor sleep state, mirroring F3/F4 (0.11.0: no pause)."""

    def __init__(self, opts):
        self.o, self.d = opts, opts.delays
        self.cv = threading.Condition()
        self.op_lock = threading.Lock()  # engine core runs utility calls in order
        self.paused, self.mode, self.tags = False, "abort", set()
        self.abort_gen, self.active = 0, 0
        self.weights_valid = True
        self.dead = False  # 0.11.0 only: the engine core faulted (F3)
        self.backup = None  # pinned CPU backup buffer: kept once allocated
        self.seats = threading.Semaphore(opts.max_num_seqs)

    def is_sleeping(self):
        with self.cv:
            return self.paused or bool(self.tags)

    def sleep(self, level, mode):
        with self.op_lock:
            if v11():  # AsyncLLM.sleep: reset the prefix cache, then the executor (F3)
                self._reset_prefix_cache_log()
                return self._executor_sleep(level)
            with self.cv:
                self.abort_gen += mode == "abort"
                self.paused, self.mode = True, mode
                self.cv.notify_all()
                while mode == "wait" and self.active:
                    self.cv.wait()
            vinfo("reset_ok", "Successfully reset prefix cache")
            if level >= 1:
                self._executor_sleep(level)

    def _reset_prefix_cache_log(self):
        with self.cv:
            busy = self.active
        if busy:
            vinfo("reset_fail", "Failed to reset prefix cache because some blocks "
                  f"({busy}) are not freed yet", "WARNING")
        else:
            vinfo("reset_ok", "Successfully reset prefix cache")

    def _executor_sleep(self, level):
        if self.tags:
            return vinfo("already", "Executor is already sleeping.", "WARNING")
        t0 = time.perf_counter()
        time.sleep(self.d["sleep_1" if level == 1 else "sleep_2"])
        on = self.o.enable_sleep_mode
        weights, kv = (self.o.weights_mib, self.o.kv_mib) if on else (0, 0)
        backed = weights if level == 1 else 0
        if level == 1 and on and self.backup is None:
            # cumem.py sleep(): torch.empty(..., pin_memory=True) per tensor, dropped on wake; PyTorch's caching
            # host allocator keeps the pinned blocks, so only a server's first level-1 sleep pays for them
            time.sleep(self.d["pin_1"])
            self.backup = touch(bytearray(self.o.weights_mib << 20))
        if level != 1 and on:
            self.weights_valid = False
        vinfo("cumem", f"CuMemAllocator: sleep freed {gib(weights + kv)} GiB "
              f"memory in total, of which {gib(backed)} GiB is backed up in CPU and "
              f"the rest {gib(weights + kv - backed)} GiB is discarded directly.")
        vinfo("worker", f"Sleep mode freed {format_gib(weights + kv)} GiB memory, "
              f"{format_gib(512)} GiB memory is still in use.")
        vinfo("asleep", f"It took {time.perf_counter() - t0:.6f} seconds to fall asleep.")
        with self.cv:
            self.tags = {"weights", "kv_cache"}

    def wake(self, tags):
        with self.op_lock:
            if not v11() and tags is not None and "scheduling" in tags:
                tags = [t for t in tags if t != "scheduling"]
            if tags is None or tags:
                self._executor_wake(tags)
            with self.cv:
                if not self.tags:
                    self.paused = False
                    self.cv.notify_all()

    def _executor_wake(self, tags):
        if not self.tags:
            return vinfo("not_sleeping", "Executor is not sleeping.", "WARNING")
        for tag in tags or []:
            if tag not in self.tags:
                return vinfo("tag", f"Tag {tag} is not in sleeping tags "
                             f"{self.tags}", "WARNING")
        t0 = time.perf_counter()
        time.sleep(self.d["wake"])
        shown = tags if tags is not None else self.tags
        vinfo("awake", f"It took {time.perf_counter() - t0:.6f} seconds "
              f"to wake up tags {shown}.")
        with self.cv:
            self.tags = self.tags - set(tags) if tags else set()

    def reload(self):
        with self.op_lock:
            vinfo("reload", "Reloading weights inplace...")
            time.sleep(self.d["reload"])
            self.weights_valid = True
            log("DOUBLE-NOTE weights reloaded")

    def reset(self):
        with self.op_lock:
            if v11():
                vinfo("reset_api", "Resetting prefix cache with specific None...")
            else:
                vinfo("reset_api", "Resetting prefix cache...")
            time.sleep(self.d["reset"])

    def admit(self):
        """Queue while paused (F3; 0.11.0 never pauses), then take a seat (max_num_seqs)."""
        with self.cv:
            while self.paused:
                self.cv.wait()
            self.active += 1
            gen = self.abort_gen
        self.seats.acquire()
        return gen

    def release(self):
        self.seats.release()
        with self.cv:
            self.active -= 1
            self.cv.notify_all()

    def step(self, gen):
        """Before one engine step: None to go on, "abort" (a sleep aborted the request,
        0.24.0) or "dead" (0.11.0: the step ran on unmapped memory and killed the engine).
        Blocks while paused in mode keep."""
        with self.cv:
            while self.paused and self.mode == "keep" and self.abort_gen == gen:
                self.cv.wait()
            if self.dead:
                return "dead"
            if v11() and self.tags and self.o.enable_sleep_mode:
                self._die()
                return "dead"
            return None if self.abort_gen == gen else "abort"

    def _die(self):
        """0.11.0: a forward pass on the unmapped CuMem pool (F3); caller holds cv."""
        self.dead = True
        self.cv.notify_all()
        info("core.py:710", "EngineCore encountered a fatal error.", "ERROR")
        log("RuntimeError: CUDA error: an illegal memory access was encountered")
        info("async_llm.py:480", "AsyncLLM output_handler failed.", "ERROR")
        info("core_client.py:565", "Engine core proc EngineCore_DP0 died unexpectedly, "
             "shutting down client.", "ERROR")


def shut_down_after(delay, why):
    """0.11.0 launcher: an errored engine makes uvicorn exit (status 0) (F3)."""
    def run():
        time.sleep(delay)
        log(f"DOUBLE-NOTE shutting down: {why}")
        log("INFO:     Shutting down")
        log("INFO:     Application shutdown complete.")
        log("INFO:     Finished server process")
        os._exit(0)
    threading.Thread(target=run, daemon=True).start()


# ------------------------------------------------- engine start-up (F11) ---
ENGINE_DELAYS = {"weights": 0.01, "compile_miss": 0.06, "compile_hit": 0.015, "graphs": 0.01}
COMPILE_KEY_ARGS = {   # the copy of kit/workload/serverlog.py's (the double imports nothing from kit)
    "0.24.0": ("--model", "--dtype", "--quantization", "--max-model-len", "--enable-sleep-mode",
               "--max-num-seqs", "--max-num-batched-tokens", "--compilation-config",
               "--tensor-parallel-size", "--trust-remote-code"),
    "0.11.0": ("--model", "--dtype", "--quantization", "--max-model-len", "--compilation-config",
               "--tensor-parallel-size", "--trust-remote-code"),
}
# 0.11.0 hashes only these of the compilation config (config/compilation.py:378-386)
V11_COMPILATION_KEYS = ("level", "backend", "custom_ops", "splitting_ops", "use_inductor",
                        "inductor_compile_config", "inductor_passes", "pass_config")
ENGINE_SRC = {   # [file:line] as vLLM prints it (the logger call's line)
    "0.11.0": {"cache_dir": "backends.py:548", "compiled": "backends.py:218", "loaded": "backends.py:164",
               "total": "monitor.py:34", "graphs": "gpu_model_runner.py:3480", "init": "core.py:210"},
    "0.24.0": {"cache_dir": "backends.py:1089", "compiled": "backends.py:393", "loaded": "backends.py:292",
               "total": "monitor.py:53", "graphs": "model_runner.py:726", "init": "core.py:337"},
}


def compile_key(argv, version):
    """The compile-cache hash folder name: it changes with exactly the args that enter vLLM's key."""
    found = {}
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in COMPILE_KEY_ARGS[version]:
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            found[name] = value if eq else nxt if nxt and not nxt.startswith("--") else True
    if version == "0.11.0" and "--compilation-config" in found:
        cc = json.loads(found["--compilation-config"])
        found["--compilation-config"] = {k: cc[k] for k in V11_COMPILATION_KEYS if k in cc}
    text = json.dumps([version, sorted(found.items())], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def phase(name):
    """Sleep one start-up phase; return its measured seconds."""
    t = time.perf_counter()
    time.sleep(OPTS.delays.get(name, ENGINE_DELAYS[name]))
    return time.perf_counter() - t


def engine_start(argv):
    """Weights, compile (a miss with an empty cache folder, a hit after), CUDA graphs: F11."""
    src = ENGINE_SRC[OPTS.version]
    seconds = phase("weights")
    size = f"{OPTS.weights_mib / 1024:.4f}" if v11() else format_gib(OPTS.weights_mib)
    vinfo("load", f"Model loading took {size} GiB and {seconds:.6f} seconds")
    t_init = time.perf_counter()
    root = os.environ.get("VLLM_CACHE_ROOT") or os.path.expanduser("~/.cache/vllm")
    folder = os.path.join(root, "torch_compile_cache", compile_key(argv, OPTS.version), "rank_0_0", "backbone")
    os.makedirs(folder, exist_ok=True)
    info(src["cache_dir"], f"Using cache directory: {folder} for vLLM's torch.compile")
    marker = os.path.join(folder, "vllm_compile_cache.py")
    shape = "dynamic shape" if v11() else "compile range (1, 4096)"
    if os.path.exists(marker):
        compiled = phase("compile_hit")
        info(src["loaded"], f"Directly load the compiled graph(s) for {shape} from the cache, took {compiled:.3f} s")
    else:
        compiled = phase("compile_miss")
        info(src["compiled"], f"Compiling a graph for {shape} takes {compiled:.2f} s")
        with open(marker, "w") as f:
            f.write("{}\n")
    info(src["total"], f"torch.compile {'takes' if v11() else 'took'} {compiled:.2f} s in total")
    info(src["graphs"], f"Graph capturing finished in {phase('graphs'):.0f} secs, took 0.08 GiB")
    init = time.perf_counter() - t_init
    info(src["init"], f"init engine (profile, create kv cache, warmup model) took {init:.2f} "
         + ("seconds" if v11() else f"s (compilation: {compiled:.2f} s)"))


def touch(buf):
    buf[::4096] = b"\x01" * len(range(0, len(buf), 4096))  # make pages resident
    return buf


def generate(engine, gen, max_tokens, ignore_eos):
    """Yield (token_text, finish_reason_or_None) one engine output at a time;
    finish "abort" or "dead" ends it without a token."""
    garbage = not engine.weights_valid
    stops = not (ignore_eos or garbage) and max_tokens >= NATURAL_LEN
    n = NATURAL_LEN if stops else max_tokens
    for i in range(n):
        time.sleep(engine.d["first_token" if i == 0 else "token"])
        stop = engine.step(gen)
        if stop:
            yield "", stop
            return
        last = i == n - 1
        text = "!" if garbage else ("" if last and stops else f" t{i}")
        yield text, ("stop" if stops else "length") if last else None


# ------------------------------------------------------------------ http ---
def error_body(message, etype, code, param=None):
    return {"error": {"message": message, "type": etype, "param": param,
                      "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version, sys_version = "uvicorn", ""

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def log_request(self, code="-", size="-"):
        code = getattr(code, "value", code)
        phrase = self.responses.get(code, ("",))[0]
        log(f'INFO:     {self.client_address[0]}:{self.client_address[1]} - '
            f'"{self.requestline}" {code} {phrase}')

    def read_body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not raw:
            return None, "-"
        try:
            body = json.loads(raw)
            return body, json.dumps(body, separators=(",", ":"))
        except ValueError:
            text = raw.decode("utf-8", "replace")
            return text, json.dumps(text)

    def dispatch(self, method):
        url = urlsplit(self.path)
        body, shown = self.read_body()
        log(f"DOUBLE-REQUEST {method} {self.path} {shown}")
        route = ROUTES.get(url.path)
        if route is None or (route[2] and os.environ.get("VLLM_SERVER_DEV_MODE") != "1"):
            return self.send_json(404, {"detail": "Not Found"})
        if route[0] != method:
            return self.send_json(405, {"detail": "Method Not Allowed"})
        if ENGINE.dead and route[3]:  # 0.11.0 engine dead: EngineDeadError (F3)
            if url.path == "/health":
                return self.send_empty(503)
            if url.path == "/v1/chat/completions":  # route's except -> HTTPException
                return self.send_json(500, error_body(ENGINE_DEAD, "Internal Server Error", 500))
            self.send_empty(500)  # launcher.py runtime_exception_handler: and exit now
            return shut_down_after(0.05, "engine dead (EngineDeadError handler)")
        t0 = time.perf_counter()
        route[1](self, parse_qs(url.query), body)
        # the server-side duration: `make bench` sets the kit's measurement against it
        log(f"DOUBLE-TIMING {method} {url.path} {time.perf_counter() - t0:.6f}")

    def send_json(self, status, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_empty(self, status=200):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_server_error_text(self):
        """Starlette's ServerErrorMiddleware answer to an unhandled exception (0.11.0)."""
        data = b"Internal Server Error"
        self.send_response(500)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def send_sse(self, payload):
        data = f"data: {payload}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_sse(self):
        self.send_sse("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def fault(self, event, delay):
        """Apply a due fault; True if the request was answered (error500)."""
        action = OPTS.faults.hit(event)
        if action == "error500":
            log(f"DOUBLE-FAULT error500 on {event}")
            self.send_json(500, error_body(f"vllm_double injected fault on {event}",
                                           "InternalServerError", 500))
            return True
        if action:
            die_or_hang(action, event, delay)
        return False


# ---------------------------------------------------------------- routes ---
def r_health(h, q, body):
    h.send_empty(200)


def r_version(h, q, body):
    h.send_json(200, {"version": OPTS.version})


def r_models(h, q, body):
    now = int(time.time())
    card = {"id": OPTS.name, "object": "model", "created": now, "owned_by": "vllm",
            "root": OPTS.model, "parent": None, "max_model_len": OPTS.max_model_len,
            "permission": [{"id": f"modelperm-{uuid.uuid4().hex}",
                            "object": "model_permission", "created": now}]}
    h.send_json(200, {"object": "list", "data": [card]})


def r_sleep(h, q, body):
    try:
        level = int(q.get("level", ["1"])[0])  # the body is ignored (F2)
    except ValueError as e:
        if v11():
            return h.send_server_error_text()
        return h.send_json(400, error_body(str(e), "BadRequestError", 400))
    mode = "abort" if v11() else q.get("mode", ["abort"])[0]  # 0.11.0 has no mode
    if mode not in ("abort", "wait", "keep"):
        return h.send_json(400, error_body(f"Invalid pause mode: {mode}",
                                           "BadRequestError", 400))
    delay = OPTS.delays["sleep_1" if level == 1 else "sleep_2"]
    if not h.fault("sleep", delay):
        ENGINE.sleep(level, mode)
        h.send_empty(200)


def r_wake(h, q, body):
    tags = q.get("tags") or None
    vinfo("wake_api", f"wake up the engine with tags: {tags}")
    if not h.fault("wake", OPTS.delays["wake"]):
        ENGINE.wake(tags)
        h.send_empty(200)


def r_is_sleeping(h, q, body):
    if v11():
        vinfo("is_sleeping_api", "check whether the engine is sleeping")
    h.send_json(200, {"is_sleeping": ENGINE.is_sleeping()})


def r_rpc(h, q, body):
    method = body.get("method") if isinstance(body, dict) else None
    if method is None:
        msg = "Missing 'method' in request body" if isinstance(body, dict) \
            else "JSON decode error"
        return h.send_json(400, error_body(msg, "Bad Request", 400))
    if method == "reload_weights" and h.fault("reload", OPTS.delays["reload"]):
        return
    if method != "reload_weights":
        if v11():
            return h.send_server_error_text()
        return h.send_json(500, error_body(f"vllm_double does not implement "
                                           f"collective_rpc method {method!r}",
                                           "InternalServerError", 500))
    ENGINE.reload()
    h.send_json(200, {"results": [None]})


def r_reset(h, q, body):
    if not h.fault("reset", OPTS.delays["reset"]):
        ENGINE.reset()
        h.send_empty(200)


def prompt_words(messages):
    n = 0
    for m in messages:
        c = m.get("content") if isinstance(m, dict) else None
        parts = c if isinstance(c, list) else [{"text": c or ""}]
        n += sum(len(str(p.get("text", "")).split()) for p in parts if isinstance(p, dict))
    return n


def chat_error(body):
    """vLLM-shaped validation; returns (status, error json) or None."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return 400, error_body("Field required: messages", "BadRequestError", 400)
    if body.get("model") not in (None, "", OPTS.name):
        return 404, error_body(f"The model `{body['model']}` does not exist.",
                               "NotFoundError", 404, None if v11() else "model")
    if body.get("stream_options") and not body.get("stream"):
        return 400, error_body("Stream options can only be defined when "
                               "`stream=True`.", "BadRequestError", 400)
    n_in, mt, limit = prompt_words(body["messages"]), max_tokens_of(body), OPTS.max_model_len
    if not isinstance(mt, int) or mt < 1:
        return 400, error_body(f"max_tokens must be at least 1, got {mt}.",
                               "BadRequestError", 400, None if v11() else "max_tokens")
    if n_in + mt <= limit:
        return None
    if v11():  # 0.11.0 serving_engine.py:681-688
        return 400, error_body(
            f"'max_tokens' or 'max_completion_tokens' is too large: {mt}. This "
            f"model's maximum context length is {limit} tokens and your request has "
            f"{n_in} input tokens ({mt} > {limit} - {n_in}).", "BadRequestError", 400)
    if mt > limit:  # 0.24.0 renderers/params.py:208-219
        return 400, error_body(
            f"max_tokens={mt} cannot be greater than max_model_len=max_total_tokens="
            f"{limit}. Please request fewer output tokens.", "BadRequestError", 400,
            "max_tokens")
    return 400, error_body(  # 0.24.0 renderers/params.py:420-433
        f"This model's maximum context length is {limit} tokens. However, you "
        f"requested {mt} output tokens and your prompt contains {n_in} input tokens, "
        f"for a total of {n_in + mt} tokens. Please reduce the length of the input "
        f"prompt or the number of requested output tokens.", "BadRequestError", 400,
        "input_tokens")


def max_tokens_of(body):
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    if mt is None:
        return OPTS.max_model_len - prompt_words(body["messages"])
    return mt


def r_chat(h, q, body):
    err = chat_error(body)
    if err:
        return h.send_json(*err)
    if h.fault("prompt", OPTS.delays["first_token"]):
        return
    req = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
           "n_in": prompt_words(body["messages"]), "max": max_tokens_of(body),
           "ignore_eos": bool(body.get("ignore_eos"))}
    if body.get("stream"):
        h.start_sse()  # headers leave before any engine output (F9)
    gen = ENGINE.admit()
    try:
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage")
            stream_chat(h, req, gen, bool(usage))
        else:
            full_chat(h, req, gen)
    finally:
        ENGINE.release()


def chunk(req, choices, **extra):
    c = {"id": req["id"], "object": "chat.completion.chunk", "created": req["created"],
         "model": OPTS.name, "choices": choices}
    c.update(extra)
    return json.dumps(c, separators=(",", ":"))


def usage(req, n_out):
    return {"prompt_tokens": req["n_in"], "total_tokens": req["n_in"] + n_out,
            "completion_tokens": n_out}


def stream_chat(h, req, gen, include_usage):
    n_out = 0
    for text, finish in generate(ENGINE, gen, req["max"], req["ignore_eos"]):
        if finish == "dead":  # 0.11.0: the error as the next chunk (F3)
            h.send_sse(json.dumps(error_body(ENGINE_DEAD, "BadRequestError", 400)))
            h.end_sse()
            return shut_down_after(OPTS.delays["watchdog"], "engine dead (watchdog)")
        if n_out == 0 and finish != "abort":
            first = {"prompt_token_ids": None}
            if not v11():
                first["prompt_text"] = None
            h.send_sse(chunk(req, [{"index": 0, "delta": {"role": "assistant",
                       "content": ""}, "logprobs": None, "finish_reason": None}], **first))
        if finish == "abort" and n_out == 0:
            break  # vLLM skips the empty first output of an aborted request
        n_out += finish != "abort"
        choice = {"index": 0, "delta": {"content": text} if text else {},
                  "logprobs": None, "finish_reason": finish}
        if finish:
            choice["stop_reason"] = None
        choice["token_ids"] = None
        extra = {}
        if finish and not include_usage and not v11():
            extra["system_fingerprint"] = OPTS.fingerprint
        h.send_sse(chunk(req, [choice], **extra))
    if include_usage:
        extra = {} if v11() else {"system_fingerprint": OPTS.fingerprint}
        h.send_sse(chunk(req, [], usage=usage(req, n_out), **extra))
    h.end_sse()


def full_chat(h, req, gen):
    text, n_out, finish = "", 0, "length"
    for piece, fin in generate(ENGINE, gen, req["max"], req["ignore_eos"]):
        if fin == "dead":  # 0.11.0: EngineDeadError -> HTTPException 500 (F3)
            h.send_json(500, error_body(ENGINE_DEAD, "Internal Server Error", 500))
            return shut_down_after(OPTS.delays["watchdog"], "engine dead (watchdog)")
        text += piece
        n_out += fin != "abort"
        finish = fin or finish
    message = {"role": "assistant", "content": text, "refusal": None, "annotations": None,
               "audio": None, "function_call": None}
    if v11():  # 0.11.0 openai/protocol.py:1830-1888, model_dump() of every field
        message.update(tool_calls=[], reasoning_content=None)
        extra = {"system_fingerprint": None}
    else:      # 0.24.0 chat_completion/protocol.py:57-135 (empty tool_calls dropped)
        message.update(reasoning=None)
        extra = {"system_fingerprint": OPTS.fingerprint, "prompt_text": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
              "stop_reason": None, "token_ids": None}
    if not v11():
        choice["routed_experts"] = None
    out = {"id": req["id"], "object": "chat.completion", "created": req["created"],
           "model": OPTS.name, "choices": [choice], "service_tier": None,
           "usage": dict(usage(req, n_out), prompt_tokens_details=None),
           "prompt_logprobs": None, "prompt_token_ids": None, "kv_transfer_params": None}
    out.update(extra)
    h.send_json(200, out)


ROUTES = {  # path -> (method, handler, dev-mode only, answers EngineDeadError)
    "/health": ("GET", r_health, False, True),
    "/version": ("GET", r_version, False, False),
    "/v1/models": ("GET", r_models, False, False),
    "/v1/chat/completions": ("POST", r_chat, False, True),
    "/sleep": ("POST", r_sleep, True, True),
    "/wake_up": ("POST", r_wake, True, True),
    "/is_sleeping": ("GET", r_is_sleeping, True, True),
    "/collective_rpc": ("POST", r_rpc, True, True),
    "/reset_prefix_cache": ("POST", r_reset, True, True),
}
OPTS = ENGINE = None


# ------------------------------------------------------------------ main ---
def on_term(signum, frame):
    t0 = time.perf_counter()
    info("launcher.py", "Shutting down FastAPI HTTP server.")
    time.sleep(OPTS.delays["shutdown"])
    log("INFO:     Application shutdown complete.")
    log(f"DOUBLE-TIMING shutdown - {time.perf_counter() - t0:.6f}")
    os._exit(0)


def seconds_since_process_start():
    """From the kernel's start time of this process (10 ms ticks), not from the first line of Python."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def banner():
    # the arms run on separate GPUs through CUDA_VISIBLE_DEVICES: say which this one got
    log(f"DOUBLE-NOTE CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}")
    vinfo("version", f"vLLM API server version {OPTS.version} (vllm_double)")
    info("utils.py", f"non-default args: model={OPTS.model!r} "
         f"enable_sleep_mode={OPTS.enable_sleep_mode} "
         f"quantization={OPTS.quantization} ignored={OPTS.unknown}")
    if os.environ.get("VLLM_SERVER_DEV_MODE") == "1":
        vinfo("dev", "SECURITY WARNING: Development endpoints are enabled! "
              "This should NOT be used in production!", "WARNING")


def wait_startup():
    d = OPTS.delays["startup"]
    action = OPTS.faults.hit("startup")
    time.sleep(max(0.0, d - (time.monotonic() - T0)) if action != "exit" else d / 2)
    if action == "exit":
        die_or_hang("exit", "startup", 0)
    if action in ("hang", "never_ready"):
        log(f"DOUBLE-FAULT {action} on startup: the port is never bound")
        while True:
            time.sleep(3600)


def main(argv=None):
    global OPTS, ENGINE
    OPTS = parse_args(sys.argv[1:] if argv is None else argv)
    ENGINE = Engine(OPTS)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    banner()
    wait_startup()
    # vLLM's wording: the kit reads the weight size from the "Model loading" line for its sleep-level checks
    engine_start(sys.argv[1:] if argv is None else argv)
    server = ThreadingHTTPServer((OPTS.host, OPTS.port), Handler)
    server.daemon_threads = True
    log(f"DOUBLE-TIMING startup - {seconds_since_process_start():.6f}")
    if v11():
        vinfo("start", f"Starting vLLM API server 0 on http://{OPTS.host}:{OPTS.port}")
    else:
        vinfo("start", f"Starting vLLM server on http://{OPTS.host}:{OPTS.port}")
    log("INFO:     Application startup complete.")
    server.serve_forever()


if __name__ == "__main__":
    main()
