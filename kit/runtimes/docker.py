"""Docker runtime: one fresh GPU container per arm and repeat (docker-py).

The container runs `python3 -m kit.workload <job.argv> --out /sleepkit/out` on host networking
(servers bind 127.0.0.1) with the host's IPC namespace. Its output streams live to on_line and into
out_dir/workload.log; when it exits, /sleepkit/out is copied out through the engine (get_archive; the
results are never bind-mounted) and the container is removed, also on errors.
compose.yaml describes the same containers; container_spec() is the single source for both.
"""
import contextlib
import os
import shutil
import tarfile
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from kit import image as images
from kit.runtimes import Runtime, gpu_access, job_name
from kit.runtimes.local import cache_slot

OUT = "/sleepkit/out"
HF_CACHE_TARGET = "/root/.cache/huggingface"
COMPILE_CACHE_VOLUME = "sleepkit-compile-cache"
COMPILE_CACHE_TARGET = "/root/.cache/vllm"
PASS_ENV = ["HF_TOKEN"]      # taken from the host environment when set; never written anywhere
LABEL_RUN, LABEL_ARM, LABEL_REPEAT = "sleepkit.run", "sleepkit.arm", "sleepkit.repeat"
START_FAILED = 125           # like `docker run`: the container could not be created or started


def container_spec(job, image, gpu=None, hf_cache="~/.cache/huggingface", cache="warm"):
    """What the arm's container is, without secrets: safe to log, compare (compose test) and record.
    gpu: the GPU settings of kit.runtimes.gpu_access.settings() (None: no GPU)."""
    gpu = gpu or gpu_access.settings("toolkit", [])
    env = {"VLLM_SERVER_DEV_MODE": "1", **gpu["environment"], **job.env}
    mounts = [{"type": "bind", "source": str(Path(hf_cache).expanduser().resolve()),
               "target": HF_CACHE_TARGET, "read_only": False}]
    mounts += [{"type": "bind", "source": str(Path(p).resolve()), "target": str(Path(p).resolve()),
                "read_only": True} for p in job.model_paths]
    mounts += gpu["mounts"]
    if cache != "cold":   # cold: nothing mounted; the workload gives every server start empty caches
        mounts.append({"type": "volume", "source": f"{COMPILE_CACHE_VOLUME}-{cache_slot(job.gpu)}",
                       "target": COMPILE_CACHE_TARGET, "read_only": False})
        env.update(TORCHINDUCTOR_CACHE_DIR=f"{COMPILE_CACHE_TARGET}/torchinductor",
                   TRITON_CACHE_DIR=f"{COMPILE_CACHE_TARGET}/triton")
    return {"image": image, "command": list(job.argv) + ["--out", OUT], "environment": env,
            "pass_env": list(PASS_ENV), "mounts": mounts, "ipc_mode": "host", "network_mode": "host",
            "init": True, "gpu": gpu,
            "labels": {LABEL_RUN: job.run_id, LABEL_ARM: job.unit, LABEL_REPEAT: str(job.repeat)},
            "name": job_name(job)}


def run_kwargs(spec, host_env=os.environ):
    """docker-py containers.create() arguments for a spec; the pass-through secrets are added here."""
    import docker
    env = dict(spec["environment"])
    env.update({k: host_env[k] for k in spec["pass_env"] if host_env.get(k)})
    mounts = [docker.types.Mount(m["target"], m["source"], type=m["type"], read_only=m["read_only"])
              for m in spec["mounts"]]
    requests = [docker.types.DeviceRequest(driver=r["driver"], count=r["count"], device_ids=r["device_ids"] or None,
                                           capabilities=r["capabilities"] or None)
                for r in spec["gpu"]["device_requests"]]
    # stdin open, closed once its one attached client (kit run) is gone: docker-py sets StdinOnce only for a
    # non-detached config; the workload stops when its stdin closes, so a SIGKILLed kit run leaves no servers
    return dict(image=spec["image"], command=spec["command"] + ["--stop-on-stdin-eof"], environment=env,
                mounts=mounts, ipc_mode=spec["ipc_mode"], network_mode=spec["network_mode"], init=spec["init"],
                device_requests=requests, devices=spec["gpu"]["devices"], labels=spec["labels"],
                name=spec["name"], stdin_open=True, detach=False)


def _close(sock):
    """Close an attach socket (docker-py gives a SocketIO over the real socket, or the socket)."""
    for part in (sock, getattr(sock, "_sock", None)):
        if part is not None:
            with contextlib.suppress(OSError):
                part.close()


def extract_archive(chunks, out_dir, top="out"):
    """Unpack a get_archive tar stream into out_dir, without its top folder; regular files and folders only."""
    out_dir = Path(out_dir).resolve()
    with tempfile.TemporaryFile() as buf:
        for chunk in chunks:
            buf.write(chunk)
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not parts or parts[0] != top or len(parts) == 1 or ".." in parts:
                    continue
                dest = out_dir.joinpath(*parts[1:])
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                elif member.isfile() and parts[1:] != ("workload.log",):   # the host's copy is complete
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)


def stream_lines(chunks):
    """Byte chunks (not aligned to lines) -> text lines without the newline."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, image=None, gpu_access="auto", hf_cache="~/.cache/huggingface", cache="warm",
                 vllm_image=None, stop_timeout=10, client=None, on_build_line=print, host=None):
        """image None: build (or reuse) the kit image on vllm_image (default: the study's); prepare() does it."""
        self.image, self.vllm_image, self.on_build_line = image, vllm_image, on_build_line
        self.requested_access, self.hf_cache, self.cache = gpu_access, hf_cache, cache
        self.stop_timeout = stop_timeout
        self._client, self._host = client, host
        self.access, self.access_reason = None, None
        self._active = {}     # container id -> Event set once run_arm has removed it

    @property
    def client(self):
        if self._client is None:
            self._client = images.connect()
        return self._client

    @property
    def host(self):
        if self._host is None:
            self._host = gpu_access.gather()
        return self._host

    def choose_access(self):
        """The GPU access mode for this engine and host (NotReady when none works); decided once."""
        if self.access is None:
            self.access, self.access_reason = gpu_access.choose(self.requested_access, self.host, self.client.info())
        return self.access, self.access_reason

    def prepare(self):
        """Build (or find) the kit image unless one was given; after the pre-flight, before any arm."""
        if self.image is None:
            self.image = images.build_image(self.vllm_image, client=self.client, on_line=self.on_build_line)["tag"]
        return self.image

    def gpu_settings(self, job):
        """The GPU settings (kit.runtimes.gpu_access.settings) of the job's container: its GPU, or none."""
        gpus = [job.gpu] if job.gpu is not None else []
        return gpu_access.settings(self.choose_access()[0] if gpus else None, gpus, self.host if gpus else None)

    def spec(self, job):
        return container_spec(job, self.prepare(), self.gpu_settings(job), self.hf_cache, self.cache)

    def job_record(self, job, out_dir):
        """For the manifest: how this job's container got its GPU (mode, devices, mounts; no secrets)."""
        return {"gpu_access": self.gpu_settings(job)}

    def run_arm(self, job, out_dir, on_line):
        import docker
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        spec = self.spec(job)
        Path(spec["mounts"][0]["source"]).mkdir(parents=True, exist_ok=True)   # the HF cache
        self.remove_leftover(spec["name"])
        with open(out_dir / "workload.log", "a", encoding="utf-8") as log:
            def say(line):
                log.write(line + "\n")
                log.flush()
                on_line(line)
            try:
                container = self.client.containers.create(**run_kwargs(spec))
            except docker.errors.APIError as e:
                say(f"arm failed: docker could not create the container: {explain(e)}")
                return START_FAILED
            done = self._active[container.id] = threading.Event()
            stdin = self.client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
            try:
                return self._run(container, out_dir, say)
            finally:
                _close(stdin)
                self._remove(container)
                del self._active[container.id]
                done.set()

    def _run(self, container, out_dir, say):
        import docker
        try:
            container.start()
        except docker.errors.APIError as e:
            say(f"arm failed: docker could not start the container: {explain(e)}")
            return START_FAILED
        for line in stream_lines(container.logs(stream=True, follow=True)):
            say(line)
        try:
            code = container.wait()["StatusCode"]
            chunks, _ = container.get_archive(OUT)
            extract_archive(chunks, out_dir, top=Path(OUT).name)
        except docker.errors.APIError as e:
            say(f"arm failed: could not copy the results out of the container: {explain(e)}")
            return START_FAILED
        return code

    def _stop(self, container):
        with tolerate_gone():
            container.reload()
            if container.status == "running":
                container.stop(timeout=self.stop_timeout)

    def _remove(self, container):
        self._stop(container)
        with tolerate_gone():
            container.remove(force=True)

    def remove_leftover(self, name):
        """The container of an interrupted earlier attempt at the same run, arm and repeat."""
        with tolerate_gone():
            self._remove(self.client.containers.get(name))

    def remove_containers(self, **filters):
        """Stop and remove the containers matching docker filters; returns their names.

        A container that run_arm (in another thread) is following is only stopped: run_arm copies its
        results out and removes it; this waits for that."""
        names = []
        for c in self.client.containers.list(all=True, filters=filters):
            done = self._active.get(c.id)
            if done:
                self._stop(c)
                done.wait(self.stop_timeout + 60)
            else:
                self._remove(c)
            names.append(c.name)
        return names

    def stop_run(self, run_id):
        """Stop (SIGTERM, then SIGKILL after stop_timeout) and remove every container of the run."""
        return self.remove_containers(label=f"{LABEL_RUN}={run_id}")

    def clean(self):
        """Remove every sleepkit container (any run), for `kit clean`."""
        return self.remove_containers(label=LABEL_RUN)

    def describe(self):
        version = self.client.version()
        return {"name": self.name, "image": images.image_info(self.prepare(), self.client),
                "engine": {"version": version.get("Version"), "api_version": version.get("ApiVersion")},
                "gpu_access": {"requested": self.requested_access, "mode": self.access, "why": self.access_reason},
                "cache": self.cache,
                "compile_cache_volume": f"{COMPILE_CACHE_VOLUME}-gpu<id>" if self.cache != "cold" else None,
                "hf_cache": str(Path(self.hf_cache).expanduser()), "ipc_mode": "host", "network_mode": "host"}


@contextmanager
def tolerate_gone():
    """A container that is gone, or that another thread is removing (409), needs nothing more."""
    import docker
    try:
        yield
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise


def explain(error):
    """One line for an engine error, with the fix for the common GPU case."""
    text = str(getattr(error, "explanation", None) or error)
    if "capabilities: [[gpu]]" in text or "nvidia" in text.lower():
        text += " (is the NVIDIA Container Toolkit installed and configured? run `kit doctor`)"
    return text
