"""One vLLM OpenAI-compatible server: spawn, wait until ready, admin calls, streamed prompts, stop.

Container side: standard library and psutil only.
"""
import contextlib
import ctypes
import functools
import http.client
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

from kit.workload import memory, redaction

LOG_LINE_MAX = 1 << 20      # a longer server log line is written in pieces (a secret cut in two is missed)
REPLY_MAX = 1 << 20         # no answer the kit reads whole is near this; a bigger one is not vLLM's


class ServerError(RuntimeError):
    """A server call failed; the message says which call and ends with the tail of the server's log."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


try:    # looked up here, not in the child: a forked child of a threaded parent should not dlopen
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):   # not Linux
    _prctl = None


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when its parent dies without cleaning up (e.g. SIGKILL).
    Used for the servers (parent: the workload) and for the workload (parent: `kit run`, local runtime).
    Linux sends it when the *thread* that started the child ends: start it from one that waits for it."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _left(deadline):
    """Seconds left until a monotonic deadline; TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's deadline passed")
    return left


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each allowed only the time left until the call's deadline: a server that
    trickles bytes cannot stretch a call past it (a plain socket timeout restarts at every read)."""

    def __init__(self, sock, deadline):
        self.sock, self.deadline = sock, deadline
        self.raw = sock.makefile("rb", buffering=0)   # holds the socket open until the response is closed

    def readable(self):
        return True

    def readinto(self, buf):
        self.sock.settimeout(_left(self.deadline))
        return self.raw.readinto(buf)

    def close(self):
        self.raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, deadline, **kw):
        super().__init__(sock, **kw)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))


class _Connection(http.client.HTTPConnection):
    """One call to a local server: connecting, sending and every read share one deadline."""

    def __init__(self, port, deadline):
        super().__init__("127.0.0.1", port, timeout=_left(deadline))
        self.deadline = deadline
        self.response_class = functools.partial(_DeadlineResponse, deadline=deadline)

    def connect(self):
        self.timeout = _left(self.deadline)
        super().connect()

    def send(self, data):
        if self.sock is not None:
            self.sock.settimeout(_left(self.deadline))
        super().send(data)


def _excerpt(data, limit=80):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return repr(text[:limit]) + (" ..." if len(text) > limit else "")


def _completion_tokens(reply):
    """usage.completion_tokens of a reply or usage chunk, or None when it is missing or not a count."""
    usage = reply.get("usage") if isinstance(reply, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None


def _copy_log(pipe, log, secrets, on_first=None):
    """A server's output, line by line into its log file with secrets redacted, until the pipe closes
    (the server and every child that inherited the pipe are gone). on_first() when the first line came."""
    with pipe, log:
        for line in iter(lambda: pipe.readline(LOG_LINE_MAX), b""):
            if on_first:
                on_first()
                on_first = None
            try:
                log.write(redaction.redact(line, secrets)[0])
                log.flush()
            except OSError:
                pass   # e.g. a full disk: keep draining, or the server would block on a full pipe


class Server:
    def __init__(self, label, model, server_cmd, server_args, log_path, env=None, call_timeout=300.0):
        self.label, self.model = label, model
        self.server_cmd, self.server_args = server_cmd, list(server_args)
        self.log_path, self.env = log_path, env
        self.call_timeout = call_timeout
        self.proc = None
        self.port = None
        self.log_copier = None
        self.log_offset = 0          # where this start's segment of the log begins
        self.first_output_s = None   # process start -> the server's first line of output

    # -- process ---------------------------------------------------------------------------
    def command(self, port):
        return shlex.split(self.server_cmd) + ["--model", self.model, "--host", "127.0.0.1",
                                               "--port", str(port)] + self.server_args

    def start(self):
        """Start the server; its output reaches the log file through a reader thread that redacts secrets
        as it writes (kit.workload.redaction: the rule `kit bundle` uses)."""
        self.port = free_port()
        secrets = redaction.secret_values(os.environ if self.env is None else self.env)
        log = open(self.log_path, "ab")
        self.log_offset, self.first_output_s = log.tell(), None
        marker = f"=== sleepkit: starting server {self.label}: {shlex.join(self.command(self.port))}\n"
        log.write(redaction.redact(marker.encode("utf-8", "replace"), secrets)[0])
        log.flush()
        started = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.command(self.port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
                                         preexec_fn=die_with_parent)
        except OSError as e:
            log.close()
            raise ServerError(f"server {self.label} could not be started: {e}") from None
        # a daemon: a server child that keeps the pipe open never holds up the workload's exit
        def first_output():
            self.first_output_s = time.monotonic() - started
        self.log_copier = threading.Thread(target=_copy_log, args=(self.proc.stdout, log, secrets, first_output),
                                           name=f"server-{self.label}-log", daemon=True)
        self.log_copier.start()

    def log_segment(self):
        """This start's part of the log: from its `=== sleepkit: starting server` line on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

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
            if self.healthy(timeout=max(poll, 1.0)):
                return
            time.sleep(poll)

    def healthy(self, timeout):
        """GET /health answered 200 within timeout."""
        conn = _Connection(self.port, time.monotonic() + timeout)
        try:
            conn.request("GET", "/health", headers={"Connection": "close"})
            with conn.getresponse() as r:
                r.read(REPLY_MAX)
                return r.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

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
        took = time.monotonic() - t0
        self._log_settled()
        return took

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

    def _log_settled(self, wait=2.0):
        """Once the server has exited, let its last lines land in the log file (they pass the reader thread)."""
        if self.log_copier is not None and self.proc.poll() is not None:
            self.log_copier.join(wait)

    def error(self, what):
        self._log_settled()
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
    @contextlib.contextmanager
    def _open(self, method, path, body=None, timeout=None, what=None):
        """Send one request and yield the response (status < 400). One deadline bounds the whole call:
        connecting, sending, the headers and every read made inside the with block (--call-timeout)."""
        what = what or f"{method} {path}"
        limit = timeout or self.call_timeout
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Connection": "close"} | ({"Content-Type": "application/json"} if data else {})
        conn, r = _Connection(self.port, time.monotonic() + limit), None
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            if r.status >= 400:
                raise self.error(f"answered {what} with HTTP {r.status}: {r.read(300).decode('utf-8', 'replace')}")
            yield r
        except TimeoutError:
            raise self.error(f"did not answer {what} within {limit:g} s (--call-timeout)") from None
        except (OSError, http.client.HTTPException) as e:
            if self.exited():
                raise self.error(f"exited with status {self.proc.returncode} during {what}") from None
            raise self.error(f"did not answer {what}: {e!r}") from None
        finally:
            if r is not None:
                r.close()
            conn.close()

    def call(self, method, path, body=None, timeout=None, what=None):
        """One request; returns its answer: None for an empty body (vLLM's admin calls), else a JSON object.
        Anything else is a ServerError naming the call and quoting the start of the body."""
        what = what or f"{method} {path}"
        with self._open(method, path, body, timeout, what) as r:
            raw = r.read(REPLY_MAX + 1)
        if not raw.strip():
            return None
        return self._json_object(raw, f"answered {what} with")

    def _json_object(self, raw, said):
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise self.error(f"{said} something that is not a JSON object: {_excerpt(raw)}")
        return value

    def chat(self, content, max_tokens, system, stream=True, ignore_eos=False):
        """One chat completion. Returns (ttft seconds or None, output tokens)."""
        body = {"model": self.model, "temperature": 0, "max_tokens": max_tokens, "stream": stream,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": content}]}
        if ignore_eos:
            body["ignore_eos"] = True
        if stream:
            body["stream_options"] = {"include_usage": True}
            return self._stream(body)
        what = "a chat completion (POST /v1/chat/completions)"
        reply = self.call("POST", "/v1/chat/completions", body, what=what)
        tokens = _completion_tokens(reply)
        if tokens is None:
            raise self.error(f"answered {what} without usage.completion_tokens: {_excerpt(json.dumps(reply))}")
        return None, tokens

    def _stream(self, body):
        """Read the SSE stream. It counts only if it ends the way vLLM ends one (serving_chat.py): the usage
        chunk (choices [] and usage, as stream_options.include_usage asks), then `data: [DONE]`. A stream
        cut short is a failed prompt, never a short one. TTFT is the first chunk that carries a choice
        (vLLM sends it with the first token); tokens come from usage, since twins' tokens may decode to
        empty text."""
        what = "a prompt (POST /v1/chat/completions)"
        t0 = time.monotonic()
        ttft, chunks, tokens, done = None, 0, None, False
        with self._open("POST", "/v1/chat/completions", body, what=what) as r:
            try:
                for line in iter(lambda: r.readline(REPLY_MAX), b""):
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    chunk = self._json_object(payload, f"streamed in {what}")
                    chunks += 1
                    if "error" in chunk:
                        raise self.error(f"streamed an error: {json.dumps(chunk['error'])[:300]}")
                    if not isinstance(chunk.get("choices"), list):
                        raise self.error(f"streamed a chunk without a choices list in {what}: {_excerpt(payload)}")
                    if chunk["choices"] and ttft is None:
                        ttft = time.monotonic() - t0
                    if chunk.get("usage") is not None:
                        tokens = _completion_tokens(chunk)
            except (http.client.IncompleteRead, ConnectionError):
                pass   # the connection was cut: said below
        if not done:
            raise self.error(f"cut {what} short: the stream ended after {chunks} chunks without [DONE]"
                             + (f" (the server exited with status {self.proc.returncode})" if self.exited(0.5) else ""))
        if tokens is None:
            raise self.error(f"ended {what} without a usage chunk with completion_tokens ({chunks} chunks, then [DONE])")
        return ttft, tokens
