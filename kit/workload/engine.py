"""One vLLM OpenAI-compatible server: spawn, wait until ready, admin calls, streamed prompts, stop.

Container side: standard library and psutil only.
"""
import ctypes
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from kit.workload import memory


class ServerError(RuntimeError):
    """A server call failed; the message says which call and ends with the tail of the server's log."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Linux: the server gets SIGTERM if the workload dies without cleaning up (e.g. SIGKILL).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class Server:
    def __init__(self, label, model, server_cmd, server_args, log_path, env=None, call_timeout=300.0):
        self.label, self.model = label, model
        self.server_cmd, self.server_args = server_cmd, list(server_args)
        self.log_path, self.env = log_path, env
        self.call_timeout = call_timeout
        self.proc = None
        self.port = None
        self.log_offset = 0          # where this start's segment of the log begins
        self.first_output_s = None   # process start -> the server's first output in its log

    # -- process ---------------------------------------------------------------------------
    def command(self, port):
        return shlex.split(self.server_cmd) + ["--model", self.model, "--host", "127.0.0.1",
                                               "--port", str(port)] + self.server_args

    def start(self):
        self.port = free_port()
        self.log_offset = _size(self.log_path)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"=== sleepkit: starting server {self.label}: {shlex.join(self.command(self.port))}\n")
        log = open(self.log_path, "ab")
        try:
            quiet_size, started = _size(self.log_path), time.monotonic()
            self.proc = subprocess.Popen(self.command(self.port), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        except OSError as e:
            raise ServerError(f"server {self.label} could not be started: {e}") from None
        finally:
            log.close()
        self.first_output_s = None
        threading.Thread(target=self._watch_first_output, args=(self.proc, quiet_size, started), daemon=True).start()

    def _watch_first_output(self, proc, quiet_size, started, poll=0.005):
        """first_output_s: when the log first grows past the header (a thread, so the readiness poll's
        interval does not bound its precision); gives up when the process has exited."""
        while proc.poll() is None:
            if _size(self.log_path) > quiet_size:
                self.first_output_s = time.monotonic() - started
                return
            time.sleep(poll)

    def log_segment(self):
        """This start's part of the log: from its `=== sleepkit: starting server` line on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exited(self, wait=2.0):
        """After a dropped connection: did the server die? (it may take a moment to be reaped)"""
        try:
            self.proc.wait(wait)
            return True
        except subprocess.TimeoutExpired:
            return False

    def wait_ready(self, timeout, poll=0.05, beat_every=30.0, heartbeat=None):
        """Poll /health every `poll` s; fail at once if the process exits. `heartbeat(seconds)` every
        `beat_every` s while waiting."""
        t0 = time.monotonic()
        next_beat = beat_every
        while True:
            if not self.alive():
                raise self.error(f"exited with status {self.proc.returncode} before it was ready")
            waited = time.monotonic() - t0
            if waited > timeout:
                raise self.error(f"was not ready after {timeout:.0f} s (--ready-timeout)")
            if heartbeat and waited >= next_beat:
                heartbeat(waited)
                next_beat += beat_every
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=max(poll, 1.0)) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(poll)

    def stop(self, grace=30.0):
        """SIGTERM to the server's process group, SIGKILL after `grace` seconds. Returns seconds taken."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # the engine core may outlive the API server for a moment: take the whole group down
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return time.monotonic() - t0

    def rss_mib(self):
        return memory.tree_rss_mib(self.proc.pid) if self.alive() else None

    # -- diagnostics -------------------------------------------------------------------------
    def log_tail(self, lines=25):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def error(self, what):
        tail = self.log_tail()
        return ServerError(f"server {self.label} ({self.model}) {what}\n--- last lines of {self.log_path}:\n{tail}")

    def log_matches(self, pattern):
        """All matches of a regex in the server's log (used for the engine's sleep/weights lines)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return re.findall(pattern, f.read())
        except OSError:
            return []

    # -- HTTP ----------------------------------------------------------------------------------
    def _open(self, method, path, body=None, timeout=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        return urllib.request.urlopen(req, timeout=timeout or self.call_timeout)

    def _failure(self, what, e):
        """The ServerError for a failed exchange: an HTTP error, a dead server, or no answer."""
        if isinstance(e, urllib.error.HTTPError):
            detail = e.read().decode("utf-8", "replace")[:300]
            return self.error(f"answered {what} with HTTP {e.code}: {detail}")
        if self.exited():
            return self.error(f"exited with status {self.proc.returncode} during {what}")
        return self.error(f"did not answer {what}: {getattr(e, 'reason', e)}")

    def call(self, method, path, body=None, timeout=None):
        try:
            with self._open(method, path, body, timeout) as r:
                text = r.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:   # HTTPError is a URLError
            raise self._failure(f"{method} {path}", e) from None
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def chat(self, content, max_tokens, system, stream=True, ignore_eos=False):
        """One chat completion. Returns (ttft seconds or None, output tokens)."""
        body = {"model": self.model, "temperature": 0, "max_tokens": max_tokens, "stream": stream,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": content}]}
        if ignore_eos:
            body["ignore_eos"] = True
        if not stream:
            reply = self.call("POST", "/v1/chat/completions", body)
            return None, reply["usage"]["completion_tokens"]
        body["stream_options"] = {"include_usage": True}
        try:
            return self._stream(body)
        except (urllib.error.URLError, OSError) as e:
            raise self._failure("a prompt (POST /v1/chat/completions)", e) from None

    def _stream(self, body):
        """Read the SSE stream: TTFT is the first chunk that carries a choice (vLLM sends it with the
        first token); tokens come from the usage chunk, since twins' tokens may decode to empty text."""
        t0 = time.monotonic()
        ttft, chunks, usage = None, 0, None
        with self._open("POST", "/v1/chat/completions", body) as r:
            for raw in r:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    break
                chunk = json.loads(payload)
                if "error" in chunk:
                    raise self.error(f"streamed an error: {json.dumps(chunk['error'])[:300]}")
                if chunk.get("choices"):
                    ttft = ttft if ttft is not None else time.monotonic() - t0
                    chunks += 1
                usage = chunk.get("usage") or usage
        return ttft, usage["completion_tokens"] if usage else max(chunks - 1, 0)
