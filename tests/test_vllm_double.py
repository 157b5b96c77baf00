"""Tests for tests/vllm_double.py (stdlib + pytest + psutil only).

Every double runs as a subprocess on a free 127.0.0.1 port; readiness and log
lines are awaited by polling, never by fixed sleeps.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

pytestmark = pytest.mark.e2e     # the double's own behaviour, through real processes and sockets

DOUBLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vllm_double.py")
MODEL = "org/tiny-model"
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Double:
    def __init__(self, config=None, sleep_mode=True, dev=True, model=MODEL, env=None):
        self.port = free_port()
        cmd = [sys.executable, DOUBLE, "--config", json.dumps(config or {}),
               "--model", model, "--host", "127.0.0.1", "--port", str(self.port),
               "--gpu-memory-utilization", "0.3", "--max-model-len", "2048",
               "--max-num-seqs", "2", "--no-enable-prefix-caching",
               "--compilation-config", '{"cudagraph_mode": "FULL_AND_PIECEWISE"}',
               "--trust-remote-code"] + (["--enable-sleep-mode"] if sleep_mode else [])
        extra, env = env or {}, dict(os.environ)
        env.pop("VLLM_SERVER_DEV_MODE", None)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        if dev:
            env["VLLM_SERVER_DEV_MODE"] = "1"
        env.update(extra)
        self.lines, self.cv = [], threading.Condition()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()

    def wait_line(self, text, start=0, timeout=10):
        """Return the first log line at index >= start containing text."""
        found = []

        def hit():
            found[:] = [ln for ln in self.lines[start:] if text in ln]
            return bool(found)

        with self.cv:
            assert self.cv.wait_for(hit, timeout), f"no log line {text!r}: {self.lines}"
        return found[0]

    def mark(self):
        with self.cv:
            return len(self.lines)

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, self.lines
            time.sleep(0.02)  # poll interval
        pytest.fail(f"double not ready: {self.lines}")

    def conn(self, timeout=5):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, method, path, body=None, timeout=5):
        c = self.conn(timeout)
        data = None if body is None else json.dumps(body)
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.status, r.read()
        c.close()
        return out

    def raw(self, method, path, body=None, timeout=5):
        """(status, content type, body bytes)."""
        c = self.conn(timeout)
        c.request(method, path, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.status, r.getheader("Content-Type"), r.read()
        c.close()
        return out

    def json(self, method, path, body=None, timeout=5):
        status, raw = self.call(method, path, body, timeout)
        return status, json.loads(raw)

    def rss(self):
        return psutil.Process(self.proc.pid).memory_info().rss

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def start():
    started = []

    def _start(config=None, ready=True, **kw):
        config = dict(config or {})
        config["delays"] = dict({"startup": 0.05}, **config.get("delays", {}))
        d = Double(config, **kw)
        started.append(d)
        if ready:
            d.wait_ready()
        return d

    yield _start
    for d in started:
        d.close()


def chat(max_tokens, **extra):
    body = {"model": MODEL, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "one two three four"}]}
    body.update(extra)
    return body


def sse_events(raw):
    events = [e.strip("\n") for e in raw.decode().split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events), raw
    return [e[len("data: "):] for e in events]


def stream_chunks(d, n):
    """A streamed n-token chat with a usage chunk: its JSON chunks, after checking 200 and the [DONE] end."""
    status, raw = d.call("POST", "/v1/chat/completions",
                         chat(n, stream=True, ignore_eos=True, stream_options={"include_usage": True}))
    assert status == 200
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


# ------------------------------------------------------------ lifecycle ---
def test_connection_refused_until_startup_then_health(start):
    d = start({"delays": {"startup": 1.0}}, ready=False)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
    assert time.monotonic() - d.t0 < 1.0  # the refusal was really before startup
    d.wait_ready()
    assert time.monotonic() - d.t0 >= 1.0
    assert d.call("GET", "/health") == (200, b"")
    assert "vLLM API server version" in d.wait_line("vLLM API server version")
    status, models = d.json("GET", "/v1/models")
    assert status == 200 and models["data"][0]["id"] == MODEL


def test_sigterm_waits_shutdown_delay_then_exits_0(start):
    d = start({"delays": {"shutdown": 0.3}})
    t = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0
    assert time.monotonic() - t >= 0.3


def test_dev_routes_need_vllm_server_dev_mode(start):
    d = start(dev=False)
    assert d.json("POST", "/sleep?level=1") == (404, {"detail": "Not Found"})
    assert d.call("GET", "/health")[0] == 200


# ---------------------------------------------------------------- sleep ---
def test_sleep_level_comes_from_query_and_body_is_ignored(start):
    d = start({"weights_mib": 20})
    m = d.mark()
    assert d.call("POST", "/sleep?level=2", {"level": 1}) == (200, b"")
    assert "of which 0.00 GiB is backed up in CPU" in d.wait_line("backed up", m)
    d.wait_line('DOUBLE-REQUEST POST /sleep?level=2 {"level":1}', m)
    d.wait_line("seconds to fall asleep.", m)
    assert d.json("GET", "/is_sleeping") == (200, {"is_sleeping": True})
    assert d.call("POST", "/wake_up") == (200, b"")
    d.wait_line("seconds to wake up tags", m)
    assert d.json("GET", "/is_sleeping") == (200, {"is_sleeping": False})
    m = d.mark()
    assert d.call("POST", "/sleep", {"level": 2})[0] == 200  # no query: level 1
    assert "of which 0.02 GiB is backed up in CPU" in d.wait_line("backed up", m)


def test_partial_wake_keeps_sleeping(start):
    d = start()
    d.call("POST", "/sleep?level=1")
    assert d.call("POST", "/wake_up?tags=weights")[0] == 200
    assert d.json("GET", "/is_sleeping")[1] == {"is_sleeping": True}
    d.call("POST", "/wake_up?tags=kv_cache")
    assert d.json("GET", "/is_sleeping")[1] == {"is_sleeping": False}


def test_chat_while_asleep_waits_for_wake_and_health_stays_200(start):
    """vLLM queues requests while the scheduler is paused (no 503)."""
    d = start()
    d.call("POST", "/sleep?level=1")
    m = d.mark()
    result = {}
    t = threading.Thread(target=lambda: result.update(r=d.json(
        "POST", "/v1/chat/completions", chat(3), timeout=10)))
    t.start()
    stream = d.conn(10)
    stream.request("POST", "/v1/chat/completions", json.dumps(chat(2, stream=True)))
    d.wait_line("DOUBLE-REQUEST POST /v1/chat/completions", m)
    assert stream.getresponse().status == 200  # headers only, no data yet
    assert d.call("GET", "/health")[0] == 200
    assert d.call("GET", "/v1/models")[0] == 200
    t.join(0.3)
    assert t.is_alive() and "r" not in result
    d.call("POST", "/wake_up")
    t.join(10)
    assert result["r"][0] == 200 and result["r"][1]["usage"]["completion_tokens"] == 3


def test_sleep_aborts_in_flight_stream(start):
    d = start({"delays": {"token": 0.01}})
    c = d.conn(10)
    c.request("POST", "/v1/chat/completions",
              json.dumps(chat(1000, stream=True, ignore_eos=True)))
    r = c.getresponse()
    assert "assistant" in r.readline().decode()
    assert d.call("POST", "/sleep?level=1")[0] == 200
    events = sse_events(r.read())
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "abort"


def test_level2_garbage_until_reload_weights(start):
    d = start()
    d.call("POST", "/sleep?level=2")
    d.call("POST", "/wake_up")
    _, out = d.json("POST", "/v1/chat/completions", chat(30))
    assert set(out["choices"][0]["message"]["content"]) == {"!"}
    m = d.mark()
    assert d.json("POST", "/collective_rpc", {"method": "reload_weights"}) == \
        (200, {"results": [None]})
    d.wait_line("DOUBLE-NOTE weights reloaded", m)
    assert d.call("POST", "/reset_prefix_cache") == (200, b"")
    _, out = d.json("POST", "/v1/chat/completions", chat(30))
    assert "!" not in out["choices"][0]["message"]["content"]
    assert out["choices"][0]["finish_reason"] == "stop"


def test_rss_grows_on_first_level1_sleep_only(start):
    d = start({"weights_mib": 64})
    r0 = d.rss()
    d.call("POST", "/sleep?level=1")
    r1 = d.rss()
    assert r1 - r0 >= 48 * MIB
    d.call("POST", "/wake_up")
    assert d.rss() >= r1 - 8 * MIB  # the buffer survives wake
    d.call("POST", "/sleep?level=1")
    d.call("POST", "/wake_up")
    assert d.rss() - r1 < 16 * MIB


def test_rss_flat_on_level2_and_without_sleep_mode(start):
    d = start({"weights_mib": 64})
    r0 = d.rss()
    d.call("POST", "/sleep?level=2")
    assert d.rss() - r0 < 16 * MIB
    plain = start({"weights_mib": 64}, sleep_mode=False)
    r0, m = plain.rss(), plain.mark()
    assert plain.call("POST", "/sleep?level=1")[0] == 200
    assert "sleep freed 0.00 GiB memory in total" in plain.wait_line("sleep freed", m)
    assert plain.json("GET", "/is_sleeping")[1] == {"is_sleeping": True}
    assert plain.rss() - r0 < 16 * MIB


# ----------------------------------------------------------------- chat ---
def test_sse_format_with_usage_and_done(start):
    chunks = stream_chunks(start(), 5)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["model"] == MODEL and isinstance(c["created"], int) for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = chunks[1:-1]
    assert len(content) == 5 and all(c["choices"][0]["delta"]["content"] for c in content)
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * 4 + ["length"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 5,
                                   "total_tokens": 9}


def test_token_counts(start):
    d = start()
    cases = [(chat(40, ignore_eos=True), 40, "length"), (chat(40), 17, "stop"),
             (chat(1), 1, "length"), (chat(5), 5, "length")]
    for body, n, reason in cases:
        status, out = d.json("POST", "/v1/chat/completions", body)
        assert status == 200 and out["object"] == "chat.completion"
        assert out["usage"]["completion_tokens"] == n
        assert out["usage"]["prompt_tokens"] == 4
        assert out["choices"][0]["finish_reason"] == reason
        assert out["choices"][0]["message"]["role"] == "assistant"


def test_error_json_shape(start):
    d = start()
    status, out = d.json("POST", "/v1/chat/completions", chat(3, model="other"))
    assert status == 404
    assert set(out["error"]) == {"message", "type", "param", "code"}
    assert out["error"]["code"] == 404 and out["error"]["type"] == "NotFoundError"
    status, out = d.json("POST", "/v1/chat/completions", chat(5000))
    assert status == 400 and out["error"]["code"] == 400


# --------------------------------------------------------------- faults ---
def test_fault_exit_on_sleep(start):
    d = start({"faults": [{"on": "sleep", "action": "exit"}]})
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        d.call("POST", "/sleep?level=1")
    assert d.proc.wait(10) == 1
    d.wait_line("DOUBLE-FAULT exit on sleep")


def test_fault_hang_on_second_wake(start):
    d = start({"faults": [{"on": "wake", "nth": 2, "action": "hang"}]})
    d.call("POST", "/sleep?level=1")
    assert d.call("POST", "/wake_up")[0] == 200
    d.call("POST", "/sleep?level=1")
    with pytest.raises(socket.timeout):
        d.call("POST", "/wake_up", timeout=0.5)
    assert d.proc.poll() is None


def test_fault_error500_on_second_prompt_only(start):
    d = start({"faults": [{"on": "prompt", "nth": 2, "action": "error500"}]})
    assert d.call("POST", "/v1/chat/completions", chat(1))[0] == 200
    status, out = d.json("POST", "/v1/chat/completions", chat(1))
    assert status == 500
    assert out["error"]["code"] == 500 and out["error"]["type"] == "InternalServerError"
    assert set(out["error"]) == {"message", "type", "param", "code"}
    assert d.call("POST", "/v1/chat/completions", chat(1))[0] == 200


def test_fault_error500_on_reload_and_reset(start):
    d = start({"faults": [{"on": "reload", "action": "error500"},
                          {"on": "reset", "action": "error500"}]})
    assert d.call("POST", "/collective_rpc", {"method": "reload_weights"})[0] == 500
    assert d.call("POST", "/reset_prefix_cache")[0] == 500


def test_fault_never_ready(start):
    d = start({"delays": {"startup": 0.05},
               "faults": [{"on": "startup", "action": "never_ready"}]}, ready=False)
    d.wait_line("DOUBLE-FAULT never_ready on startup")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
    assert d.proc.poll() is None


def test_fault_exit_on_startup(start):
    d = start({"faults": [{"on": "startup", "action": "exit"}]}, ready=False)
    assert d.proc.wait(10) == 1


def test_fault_filtered_by_model(start):
    d = start({"faults": [{"model": "other-model", "on": "prompt",
                           "action": "error500"}]})
    assert d.call("POST", "/v1/chat/completions", chat(1))[0] == 200


def test_per_model_override(start):
    d = start({"weights_mib": 1, "models": {"tiny": {"weights_mib": 40}}})
    m = d.mark()
    d.call("POST", "/sleep?level=1")
    assert "of which 0.04 GiB is backed up" in d.wait_line("backed up", m)


# ------------------------------------------- CUDA_VISIBLE_DEVICES, versions ---
V11 = {"vllm_version": "0.11.0"}
# the kit's own patterns (kit/workload/sleepcheck.py): both versions' wording must match them
WEIGHTS_RE = r"Model loading took ([\d.]+) GiB"
BACKED_UP_RE = r"([\d.]+) GiB is backed up in CPU"


def note_lines(d, text):
    d.wait_line("Application startup complete.")
    with d.cv:
        return [ln for ln in d.lines if ln.startswith(text)]


def test_cuda_visible_devices_note_names_the_gpu_or_unset(start):
    one = start(env={"CUDA_VISIBLE_DEVICES": "3"})
    none = start()
    assert note_lines(one, "DOUBLE-NOTE CUDA_VISIBLE_DEVICES") == ["DOUBLE-NOTE CUDA_VISIBLE_DEVICES=3"]
    assert note_lines(none, "DOUBLE-NOTE CUDA_VISIBLE_DEVICES") == \
        ["DOUBLE-NOTE CUDA_VISIBLE_DEVICES=unset"]


def test_unknown_vllm_version_is_a_usage_error(start):
    d = start({"vllm_version": "0.9.9"}, ready=False)
    assert d.proc.wait(10) == 2
    assert "vllm_version '0.9.9'" in d.wait_line("vllm_version")


@pytest.mark.parametrize("config, version, load, cumem, asleep, worker", [
    (V11, "0.11.0", "[gpu_model_runner.py:2653] Model loading took 0.0625 GiB and ",
     "[cumem.py:228] CuMemAllocator", "[executor_base.py:189] It took",
     "[gpu_worker.py:117] Sleep mode freed 0.31 GiB memory, 0.50 GiB"),
    ({}, "0.24.0", "[model_runner.py:302] Model loading took 0.06 GiB and ",
     "[cumem.py:206] CuMemAllocator", "[abstract.py:327] It took",
     "[gpu_worker.py:181] Sleep mode freed 0.31 GiB memory, 0.5 GiB"),
])
def test_version_string_and_log_wording(start, config, version, load, cumem, asleep, worker):
    d = start(dict(config, weights_mib=64, kv_cache_mib=256))
    assert d.json("GET", "/version") == (200, {"version": version})
    assert f"vLLM API server version {version}" in d.wait_line("vLLM API server version")
    line = d.wait_line("Model loading took")
    # 0.24.0 rounds to 0.01 GiB (10 MiB steps), 0.11.0 prints 4 decimals
    assert load in line and float(re.search(WEIGHTS_RE, line).group(1)) * 1024 == \
        pytest.approx(64, abs=5.2)
    m = d.mark()
    assert d.call("POST", "/sleep?level=1") == (200, b"")
    line = d.wait_line("backed up in CPU", m)
    assert cumem in line and re.search(BACKED_UP_RE, line).group(1) == "0.06"
    assert asleep in d.wait_line("seconds to fall asleep.", m)
    assert worker in d.wait_line("Sleep mode freed", m)


def test_v0110_level_from_query_only_and_no_mode(start):
    d = start(V11)
    m = d.mark()
    assert d.call("POST", "/sleep?level=2&mode=bogus", {"level": 1}) == (200, b"")
    assert "of which 0.00 GiB is backed up in CPU" in d.wait_line("backed up", m)
    d.call("POST", "/wake_up")
    m = d.mark()
    assert d.call("POST", "/sleep", {"level": 2}) == (200, b"")  # body ignored: level 1
    assert "of which 0.06 GiB is backed up in CPU" in d.wait_line("backed up", m)


@pytest.mark.parametrize("config, expect", [
    (V11, (500, "text/plain; charset=utf-8", b"Internal Server Error")),
    ({}, (400, "application/json", None)),
])
def test_non_integer_level(start, config, expect):
    d = start(config)
    status, ctype, body = d.raw("POST", "/sleep?level=two")
    assert (status, ctype) == expect[:2]
    if expect[2] is not None:
        assert body == expect[2]
    else:
        assert json.loads(body)["error"]["code"] == 400
    assert d.json("GET", "/is_sleeping")[1] == {"is_sleeping": False}


def test_v0110_chat_while_asleep_kills_engine_stream_gets_error_chunk(start):
    d = start(dict(V11, delays={"watchdog": 3.0}))
    d.call("POST", "/sleep?level=1")
    t0 = time.monotonic()
    status, raw = d.call("POST", "/v1/chat/completions", chat(3, stream=True), timeout=10)
    assert status == 200
    events = sse_events(raw)
    assert events[-1] == "[DONE]" and len(events) == 2
    assert json.loads(events[0]) == {"error": {
        "message": "EngineCore encountered an issue. See stack trace (above) for the root cause.",
        "type": "BadRequestError", "param": None, "code": 400}}
    d.wait_line("CUDA error: an illegal memory access was encountered")
    assert d.call("GET", "/health") == (503, b"")
    status, out = d.json("POST", "/v1/chat/completions", chat(1, stream=True))
    assert status == 500 and out["error"]["type"] == "Internal Server Error"
    assert out["error"]["message"].startswith("EngineCore encountered an issue.")
    assert d.json("GET", "/version") == (200, {"version": "0.11.0"})
    assert d.proc.wait(10) == 0  # the watchdog shuts the server down
    assert time.monotonic() - t0 >= 3.0


def test_v0110_nonstreamed_chat_while_asleep_is_500_then_an_engine_call_ends_it(start):
    d = start(dict(V11, delays={"watchdog": 60}))
    d.call("POST", "/sleep?level=2")
    status, out = d.json("POST", "/v1/chat/completions", chat(3))
    assert (status, out["error"]["code"]) == (500, 500)
    assert out["error"]["message"].startswith("EngineCore encountered an issue.")
    assert d.call("GET", "/health") == (503, b"")
    assert d.proc.poll() is None
    assert d.call("POST", "/wake_up") == (500, b"")  # EngineDeadError handler: exit now
    assert d.proc.wait(10) == 0


def test_v0110_sleep_under_an_in_flight_stream_kills_it(start):
    d = start(dict(V11, delays={"token": 0.01, "watchdog": 30}))
    c = d.conn(10)
    c.request("POST", "/v1/chat/completions",
              json.dumps(chat(1000, stream=True, ignore_eos=True)))
    r = c.getresponse()
    assert "assistant" in r.readline().decode()
    assert d.call("POST", "/sleep?level=1") == (200, b"")  # 200 while the engine dies
    events = sse_events(r.read())
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["message"].startswith("EngineCore encountered")
    assert all(json.loads(e).get("choices", [{}])[0].get("finish_reason") != "abort"
               for e in events[:-2])
    assert d.call("GET", "/health") == (503, b"")


def test_v0110_without_sleep_mode_a_sleeping_server_still_serves(start):
    d = start(V11, sleep_mode=False)
    assert d.call("POST", "/sleep?level=1") == (200, b"")
    assert d.json("GET", "/is_sleeping")[1] == {"is_sleeping": True}
    status, out = d.json("POST", "/v1/chat/completions", chat(3))
    assert status == 200 and out["usage"]["completion_tokens"] == 3


def test_v0110_is_sleeping_logs_and_reset_wording(start):
    d = start(V11)
    m = d.mark()
    d.json("GET", "/is_sleeping")
    d.wait_line("[api_server.py:1024] check whether the engine is sleeping", m)
    assert d.call("POST", "/reset_prefix_cache") == (200, b"")
    d.wait_line("[api_server.py:996] Resetting prefix cache with specific None...", m)
    new = start()
    m = new.mark()
    new.json("GET", "/is_sleeping")
    new.call("POST", "/reset_prefix_cache")
    new.wait_line("[api_router.py:38] Resetting prefix cache...", m)
    with new.cv:
        assert not any("check whether the engine is sleeping" in ln for ln in new.lines)


def test_v0110_dev_routes_need_dev_mode(start):
    d = start(V11, dev=False)
    for method, path in [("POST", "/sleep?level=1"), ("POST", "/wake_up"),
                         ("GET", "/is_sleeping"), ("POST", "/collective_rpc"),
                         ("POST", "/reset_prefix_cache"), ("POST", "/reload_weights")]:
        assert d.json(method, path) == (404, {"detail": "Not Found"})


def test_v0110_seed_table5_quirks_sleep_twice_and_wake_an_awake_server(start):
    """online_sleep2_nosleep.py: A slept twice, B 'woken' + reloaded without a sleep."""
    d = start(V11)
    m = d.mark()
    assert d.call("POST", "/sleep", {"level": 2}) == (200, b"")
    assert d.call("POST", "/sleep", {"level": 2}) == (200, b"")
    assert "WARNING" in d.wait_line("[executor_base.py:182] Executor is already sleeping.", m)
    with d.cv:
        assert sum("backed up in CPU" in ln for ln in d.lines[m:]) == 1
    d.call("POST", "/wake_up")
    m = d.mark()
    assert d.call("POST", "/wake_up") == (200, b"")
    d.wait_line("[executor_base.py:194] Executor is not sleeping.", m)
    assert d.json("POST", "/collective_rpc", {"method": "reload_weights"}) == \
        (200, {"results": [None]})
    d.wait_line("[gpu_model_runner.py:2705] Reloading weights inplace...", m)
    assert d.json("POST", "/collective_rpc", {}) == (400, {"error": {
        "message": "Missing 'method' in request body", "type": "Bad Request",
        "param": None, "code": 400}})
    assert d.raw("POST", "/collective_rpc", {"method": "no_such"}) == \
        (500, "text/plain; charset=utf-8", b"Internal Server Error")
    new = start()
    status, ctype, body = new.raw("POST", "/collective_rpc", {"method": "no_such"})
    assert (status, ctype) == (500, "application/json")
    assert json.loads(body)["error"]["type"] == "InternalServerError"


@pytest.mark.parametrize("config", [V11, {}])
def test_sse_shape_per_version(start, config):
    chunks = stream_chunks(start(config), 3)
    first, content, last = chunks[0], chunks[1:-1], chunks[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["prompt_token_ids"] is None
    assert ("prompt_text" in first) == (config != V11)
    assert len(content) == 3 and all(c["choices"][0]["token_ids"] is None for c in content)
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3
    if config == V11:
        assert "system_fingerprint" not in last
    else:
        assert last["system_fingerprint"].startswith("vllm-0.24.0-")
    assert not any("system_fingerprint" in c for c in chunks[:-1])


@pytest.mark.parametrize("config", [V11, {}])
def test_full_response_fields_per_version(start, config):
    d = start(config)
    status, out = d.json("POST", "/v1/chat/completions", chat(2))
    assert status == 200 and out["usage"]["completion_tokens"] == 2
    message = out["choices"][0]["message"]
    if config == V11:
        assert message["tool_calls"] == [] and message["reasoning_content"] is None
        assert out["system_fingerprint"] is None and "prompt_text" not in out
    else:
        assert "tool_calls" not in message and message["reasoning"] is None
        assert out["system_fingerprint"].startswith("vllm-0.24.0-") and out["prompt_text"] is None


@pytest.mark.parametrize("config, model_param, too_long", [
    (V11, None, (None, "'max_tokens' or 'max_completion_tokens' is too large: 5000.")),
    ({}, "model", ("max_tokens", "max_tokens=5000 cannot be greater than max_model_len")),
])
def test_error_details_per_version(start, config, model_param, too_long):
    d = start(config)
    status, out = d.json("POST", "/v1/chat/completions", chat(3, model="other"))
    assert status == 404 and out["error"]["param"] == model_param
    assert out["error"]["type"] == "NotFoundError" and out["error"]["code"] == 404
    status, out = d.json("POST", "/v1/chat/completions", chat(5000))
    assert status == 400 and set(out["error"]) == {"message", "type", "param", "code"}
    assert out["error"]["param"] == too_long[0]
    assert out["error"]["message"].startswith(too_long[1])
