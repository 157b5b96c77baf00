"""Headless Debian chromium driven over its DevTools protocol (websocket-client), for the site tests.

    with Browser(tmp_path) as b:
        page = b.load(Path("site/index.html"), width=390)   # {"errors": [...], "requests": [...]}
        b.evaluate("document.title"); b.screenshot(path)

It binds DevTools to 127.0.0.1 (chromium's default) and resolves no host name (--host-resolver-rules), so a
page that tried to fetch from the network would fail, and the attempt is recorded in "requests".
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import websocket

BINARIES = ("chromium", "chromium-browser")
FLAGS = ["--headless=new", "--remote-debugging-port=0", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--disable-gpu", "--disable-breakpad", "--disable-crash-reporter", "--mute-audio",
         "--host-resolver-rules=MAP * ~NOTFOUND"]


def binary():
    return next((shutil.which(b) for b in BINARIES if shutil.which(b)), None)


class Browser:
    def __init__(self, workdir, deadline_s=60):
        self.dir = Path(workdir)
        self.deadline_s = deadline_s
        self.proc = self.ws = self.session = None
        self.next_id = 0
        self.events = []

    def __enter__(self):
        profile = self.dir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)        # a stale one names the port of a browser that is gone
        flags = FLAGS + (["--no-sandbox"] if os.geteuid() == 0 else [])     # chromium refuses root with its sandbox
        self.log = open(self.dir / "chromium.log", "wb")
        self.proc = subprocess.Popen([binary(), *flags, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)      # its own process group: stopped as one
        try:
            self._connect(port_file)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _connect(self, port_file):
        lines = self._wait(lambda: port_file.is_file() and len(port_file.read_text().split()) >= 2
                           and port_file.read_text().split(), "chromium's DevToolsActivePort file")
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{lines[0]}{lines[1]}", timeout=self.deadline_s,
                                              suppress_origin=True)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def __exit__(self, *exc):
        if self.ws:
            try:
                self.send("Browser.close", session=False)     # an orderly exit: chromium reaps its children
            except (OSError, RuntimeError, websocket.WebSocketException):
                pass
            self.ws.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)      # whatever of its group is still there
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()

    def _wait(self, condition, what):
        deadline = time.monotonic() + self.deadline_s
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}) before {what}; see {self.dir}/chromium.log")
            time.sleep(0.05)
        raise TimeoutError(f"no {what} within {self.deadline_s} s")

    def _receive(self):
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = self._receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def until(self, method):
        """Wait for an event (already received or coming)."""
        deadline = time.monotonic() + self.deadline_s
        while not any(e["method"] == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {self.deadline_s} s")
            self._receive()

    def load(self, path, width, height=900):
        """Open a file at this viewport width; {"errors": [...], "requests": [urls]} of that load."""
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": width < 600})
        self.events = []
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.until("Page.loadEventFired")
        self.evaluate("document.fonts.ready.then(() => true)", wait=True)
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"]["text"])
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(f"{p['entry'].get('url', '')}: {p['entry']['text']}")
            elif e["method"] == "Network.loadingFailed":
                errors.append(f"request failed: {p.get('errorText')}")
        requests = [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]
        return {"errors": errors, "requests": requests}

    def evaluate(self, expression, wait=False):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": wait})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path, full_page=True):
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
        return path
