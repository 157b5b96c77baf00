#!/usr/bin/env python3
"""Test double of vLLM's OpenAI-compatible server (stdlib only, no GPU).

Launch exactly like the real server, with double options in front:
  python3 tests/vllm_double.py [--config JSON_OR_PATH] --model M --host H --port P
      [--enable-sleep-mode] [--max-model-len N] [--max-num-seqs N] [...ignored vLLM args]

vLLM facts this double follows (read from github vllm-project/vllm; commit
prefixes in brackets because the index holds many versions):
 F1 Dev routes (/sleep /wake_up /is_sleeping /collective_rpc /reset_prefix_cache)
    exist only with env VLLM_SERVER_DEV_MODE=1, else 404 {"detail":"Not Found"}:
    vllm/entrypoints/openai/api_server.py build_app() [0001948b]
    ("if envs.VLLM_SERVER_DEV_MODE: register_vllm_dev_api_routers(app)").
 F2 /sleep: level = query_params.get("level", "1"), mode = query "mode" default
    "abort"; the body is never read; answers 200 with an empty body:
    vllm/entrypoints/serve/dev/sleep/api_router.py L21-29 [e7a47b82].
    /wake_up: tags = query_params.getlist("tags"), [] -> None (all): L32-42.
    /is_sleeping: {"is_sleeping": bool}: L45-48.
 F3 EngineCore.sleep() pauses the scheduler first ("All pause modes queue new
    adds"); mode "abort" aborts in-flight requests (finish_reason "abort"),
    "wait" lets them drain, "keep" freezes them; wake_up() resumes only when all
    tags are awake; is_sleeping = paused or executor sleeping:
    vllm/v1/engine/core.py pause_scheduler/sleep/wake_up/is_sleeping [00080ee1].
    => a chat request sent while asleep is NOT answered 503: it waits (no
    response; streaming gets 200 headers only) and is served after /wake_up.
    The 503 "ModelSleepingError" exists only in docs/source/features/
    sleep_mode.md [39a39ca8], an unmerged doc; no server code implements it.
 F4 Worker.sleep offloads tag "weights" at level 1, nothing at level 2; it has
    no --enable-sleep-mode check. Without the flag the CuMem pool is unused
    (_maybe_get_memory_pool_context) so /sleep still answers 200, is_sleeping
    turns true and "sleep freed 0.00 GiB": vllm/v1/worker/gpu_worker.py
    sleep/_maybe_get_memory_pool_context [35d5cda1].
 F5 Log lines: vllm/device_allocator/cumem.py CuMemAllocator.sleep ("sleep freed
    %.2f GiB memory in total, of which %.2f GiB is backed up in CPU and the rest
    %.2f GiB is discarded directly."); executor: "It took %.6f seconds to fall
    asleep." / "to wake up tags %s." / "Executor is already sleeping." / "is not
    sleeping." (vllm/v1/executor/abstract.py, seen in issue #37860 log).
 F6 /collective_rpc: JSON body "method" required (400), answers
    {"results": [...]} (reload_weights -> [null]):
    vllm/entrypoints/serve/dev/rpc/api_router.py [cd20a578].
    /reset_prefix_cache -> 200 empty: serve/dev/cache/api_router.py [b35f7c2b].
 F7 /health -> 200 empty body, 503 only on EngineDeadError:
    serve/instrumentator/health.py [98b137c6]. Sleeping does not change it.
 F8 Errors (newest shape): {"error": {"message", "type", "param", "code": <http
    status int>}}: serve/engine/protocol.py ErrorInfo, serve/exception_handling/
    error_response.py [ba638200], handlers/http.py (type = HTTP phrase).
 F9 Chat stream: serving.py chat_completion_stream_generator [5e918640]: the
    first engine output yields a chunk with delta {"role":"assistant",
    "content":""}, then one chunk per output; the last content chunk carries
    finish_reason (+stop_reason); with stream_options.include_usage a chunk with
    "choices": [] and usage; then "data: [DONE]\\n\\n". Chunks: id, object
    "chat.completion.chunk", created, model, choices. Streaming response
    headers go out before any engine output (StreamingResponse,
    chat_completion/api_router.py [c0bc5965]).

Double-only behaviour: one stdout line "DOUBLE-REQUEST <METHOD> <path?query>
<compact json body or ->" per request before handling; "DOUBLE-NOTE ..." and
"DOUBLE-FAULT ..." lines; garbage output ("!" tokens, never EOS) after a level-2
sleep + wake until collective_rpc reload_weights.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

T0 = time.monotonic()
VERSION = "0.24.0"
NATURAL_LEN = 17  # tokens a reply has when EOS is honoured (the last one is EOS)
DEFAULT_DELAYS = {"startup": 0.2, "first_token": 0.02, "token": 0.002,
                  "sleep_1": 0.05, "sleep_2": 0.03, "wake": 0.03,
                  "reload": 0.05, "reset": 0.01, "shutdown": 0.05}
EVENTS = ("startup", "sleep", "wake", "reload", "reset", "prompt")
ACTIONS = ("exit", "hang", "error500", "never_ready")
_print_lock = threading.Lock()


def log(line):
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def info(src, msg, level="INFO"):
    log(f"{level} {time.strftime('%m-%d %H:%M:%S')} [{src}] {msg}")


def gib(mib):
    return f"{mib / 1024:.2f}"


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
    return delays, weights, kv, faults


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
        opts.delays, opts.weights_mib, opts.kv_mib, faults = resolve(cfg, opts.model)
    except (ValueError, OSError) as e:
        p.error(f"--config: {e}")
    opts.faults = Faults(faults)
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
    """Scheduler pause + executor sleep state, mirroring F3/F4."""

    def __init__(self, opts):
        self.o, self.d = opts, opts.delays
        self.cv = threading.Condition()
        self.op_lock = threading.Lock()  # engine core runs utility calls in order
        self.paused, self.mode, self.tags = False, "abort", set()
        self.abort_gen, self.active = 0, 0
        self.weights_valid = True
        self.backup = None  # pinned CPU backup buffer: kept once allocated
        self.seats = threading.Semaphore(opts.max_num_seqs)

    def is_sleeping(self):
        with self.cv:
            return self.paused or bool(self.tags)

    def sleep(self, level, mode):
        with self.op_lock:
            with self.cv:
                self.abort_gen += mode == "abort"
                self.paused, self.mode = True, mode
                self.cv.notify_all()
                while mode == "wait" and self.active:
                    self.cv.wait()
            info("block_pool.py", "Successfully reset prefix cache")
            if level >= 1:
                self._executor_sleep(level)

    def _executor_sleep(self, level):
        if self.tags:
            return info("abstract.py", "Executor is already sleeping.", "WARNING")
        t0 = time.perf_counter()
        time.sleep(self.d["sleep_1" if level == 1 else "sleep_2"])
        on = self.o.enable_sleep_mode
        weights, kv = (self.o.weights_mib, self.o.kv_mib) if on else (0, 0)
        backed = weights if level == 1 else 0
        if level == 1 and on and self.backup is None:
            self.backup = touch(bytearray(self.o.weights_mib << 20))
        if level != 1 and on:
            self.weights_valid = False
        info("cumem.py:213", f"CuMemAllocator: sleep freed {gib(weights + kv)} GiB "
             f"memory in total, of which {gib(backed)} GiB is backed up in CPU and "
             f"the rest {gib(weights + kv - backed)} GiB is discarded directly.")
        info("abstract.py:312",
             f"It took {time.perf_counter() - t0:.6f} seconds to fall asleep.")
        self.tags = {"weights", "kv_cache"}

    def wake(self, tags):
        with self.op_lock:
            if tags is not None and "scheduling" in tags:
                tags = [t for t in tags if t != "scheduling"]
            if tags is None or tags:
                self._executor_wake(tags)
            with self.cv:
                if not self.tags:
                    self.paused = False
                    self.cv.notify_all()

    def _executor_wake(self, tags):
        if not self.tags:
            return info("abstract.py", "Executor is not sleeping.", "WARNING")
        t0 = time.perf_counter()
        time.sleep(self.d["wake"])
        shown = tags if tags is not None else self.tags
        info("abstract.py", f"It took {time.perf_counter() - t0:.6f} seconds "
             f"to wake up tags {shown}.")
        self.tags = self.tags - set(tags) if tags else set()

    def reload(self):
        with self.op_lock:
            time.sleep(self.d["reload"])
            self.weights_valid = True
            log("DOUBLE-NOTE weights reloaded")

    def reset(self):
        with self.op_lock:
            info("api_router.py", "Resetting prefix cache...")
            time.sleep(self.d["reset"])

    def admit(self):
        """Queue while paused (F3), then take a seat (max_num_seqs)."""
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

    def may_step(self, gen):
        """False once aborted by a sleep; blocks while paused in mode keep."""
        with self.cv:
            while self.paused and self.mode == "keep" and self.abort_gen == gen:
                self.cv.wait()
            return self.abort_gen == gen


def touch(buf):
    buf[::4096] = b"\x01" * len(range(0, len(buf), 4096))  # make pages resident
    return buf


def generate(engine, gen, max_tokens, ignore_eos):
    """Yield (token_text, finish_reason_or_None) one engine output at a time."""
    garbage = not engine.weights_valid
    stops = not (ignore_eos or garbage) and max_tokens >= NATURAL_LEN
    n = NATURAL_LEN if stops else max_tokens
    for i in range(n):
        time.sleep(engine.d["first_token" if i == 0 else "token"])
        if not engine.may_step(gen):
            yield "", "abort"
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
    h.send_json(200, {"version": VERSION})


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
        return h.send_json(400, error_body(str(e), "BadRequestError", 400))
    mode = q.get("mode", ["abort"])[0]
    if mode not in ("abort", "wait", "keep"):
        return h.send_json(400, error_body(f"Invalid pause mode: {mode}",
                                           "BadRequestError", 400))
    delay = OPTS.delays["sleep_1" if level == 1 else "sleep_2"]
    if not h.fault("sleep", delay):
        ENGINE.sleep(level, mode)
        h.send_empty(200)


def r_wake(h, q, body):
    tags = q.get("tags") or None
    info("api_router.py", f"wake up the engine with tags: {tags}")
    if not h.fault("wake", OPTS.delays["wake"]):
        ENGINE.wake(tags)
        h.send_empty(200)


def r_is_sleeping(h, q, body):
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
                               "NotFoundError", 404, "model")
    if body.get("stream_options") and not body.get("stream"):
        return 400, error_body("Stream options can only be defined when "
                               "`stream=True`.", "BadRequestError", 400)
    n_in, mt = prompt_words(body["messages"]), max_tokens_of(body)
    if not isinstance(mt, int) or mt < 1 or n_in + mt > OPTS.max_model_len:
        return 400, error_body(
            f"'max_tokens' or 'max_completion_tokens' is too large: {mt}. This "
            f"model's maximum context length is {OPTS.max_model_len} tokens and "
            f"your request has {n_in} input tokens.", "BadRequestError", 400,
            "max_tokens")
    return None


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
        if n_out == 0 and finish != "abort":
            h.send_sse(chunk(req, [{"index": 0, "delta": {"role": "assistant",
                       "content": ""}, "logprobs": None, "finish_reason": None}]))
        if finish == "abort" and n_out == 0:
            break  # vLLM skips the empty first output of an aborted request
        n_out += finish != "abort"
        choice = {"index": 0, "delta": {"content": text} if text else {},
                  "logprobs": None, "finish_reason": finish}
        if finish:
            choice["stop_reason"] = None
        h.send_sse(chunk(req, [choice]))
    if include_usage:
        h.send_sse(chunk(req, [], usage=usage(req, n_out)))
    h.end_sse()


def full_chat(h, req, gen):
    text, n_out, finish = "", 0, "length"
    for piece, fin in generate(ENGINE, gen, req["max"], req["ignore_eos"]):
        text += piece
        n_out += fin != "abort"
        finish = fin or finish
    h.send_json(200, {
        "id": req["id"], "object": "chat.completion", "created": req["created"],
        "model": OPTS.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                             "tool_calls": []},
                     "logprobs": None, "finish_reason": finish, "stop_reason": None}],
        "usage": dict(usage(req, n_out), prompt_tokens_details=None),
        "prompt_logprobs": None, "kv_transfer_params": None})


ROUTES = {  # path -> (method, handler, dev-mode only)
    "/health": ("GET", r_health, False),
    "/version": ("GET", r_version, False),
    "/v1/models": ("GET", r_models, False),
    "/v1/chat/completions": ("POST", r_chat, False),
    "/sleep": ("POST", r_sleep, True),
    "/wake_up": ("POST", r_wake, True),
    "/is_sleeping": ("GET", r_is_sleeping, True),
    "/collective_rpc": ("POST", r_rpc, True),
    "/reset_prefix_cache": ("POST", r_reset, True),
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
    info("utils.py", f"vLLM API server version {VERSION} (vllm_double)")
    info("utils.py", f"non-default args: model={OPTS.model!r} "
         f"enable_sleep_mode={OPTS.enable_sleep_mode} "
         f"quantization={OPTS.quantization} ignored={OPTS.unknown}")
    if os.environ.get("VLLM_SERVER_DEV_MODE") == "1":
        info("__init__.py", "SECURITY WARNING: Development endpoints are enabled! "
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
    # vLLM's wording: the kit reads the weight size from this line for its sleep-level checks
    info("model_runner.py:302", f"Model loading took {gib(OPTS.weights_mib)} GiB and 0.01 seconds")
    server = ThreadingHTTPServer((OPTS.host, OPTS.port), Handler)
    server.daemon_threads = True
    log(f"DOUBLE-TIMING startup - {seconds_since_process_start():.6f}")
    info("api_server.py", f"Starting vLLM API server 0 on http://{OPTS.host}:{OPTS.port}")
    log("INFO:     Application startup complete.")
    server.serve_forever()


if __name__ == "__main__":
    main()
