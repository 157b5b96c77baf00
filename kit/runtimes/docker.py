"""Docker runtime: one fresh GPU container per arm and repeat (docker-py).

The container runs `python3 -m kit.workload <job.argv> --out /sleepkit/out` on host networking
(servers bind 127.0.0.1) with the host's IPC namespace. Its output streams live to on_line and into
out_dir/workload.log; when it exits, /sleepkit/out is copied out through the engine (get_archive; the
results are never bind-mounted) and the container is removed, also on errors.
compose.yaml describes the same containers; kit.runtimes.common.container_spec() is the single source for both.
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
from kit.checks import GB, Check
from kit.errors import KitError, NotReady
from kit.runtimes import gpu_access
from kit.runtimes.base import Runtime
from kit.runtimes.common import COMPILE_CACHE_VOLUME, LABEL_RUN, OUT, container_spec

START_FAILED = 125           # like `docker run`: the container could not be created or started
PULL_DISK_GB = 30            # a vLLM image pulled and unpacked, plus the kit's layer and build room
BUILD_DISK_GB = 2            # the kit's own layer on a base image already here


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
    summary = "one fresh GPU container per arm"

    def __init__(self, image=None, gpu_access="auto", hf_cache="~/.cache/huggingface", cache="warm",
                 vllm_image=None, stop_timeout=10, client=None, on_build_line=print, host=None):
        """image None: build (or reuse) the kit image on vllm_image (default: the study's); prepare() does it."""
        self.image, self.vllm_image, self.on_build_line = image, vllm_image, on_build_line
        self.requested_access, self.hf_cache, self.cache = gpu_access, hf_cache, cache
        self.stop_timeout = stop_timeout
        self._client, self._host = client, host
        self.access, self.access_reason = None, None
        self._active = {}     # container id -> Event set once run_arm has removed it

    @classmethod
    def from_options(cls, options, on_build_line=print):
        return cls(image=options.image or None, vllm_image=options.vllm_image or None, gpu_access=options.gpu_access,
                   hf_cache=options.hf_cache, cache=options.cache, on_build_line=on_build_line)

    @classmethod
    def hub_dir(cls, options, env=os.environ):
        """The servers look in the mounted --hf-cache."""
        return Path(options.hf_cache).expanduser() / "hub"

    @classmethod
    def needs_host_gpu(cls, options):
        return options.gpu_list != "none"      # the containers' GPU access

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

    def doctor_checks(self, options, results_dir):
        """The engine, the GPU access, the image (given, or the base it is built on) and the room to build it."""
        try:
            client = self.client
            v = client.version()
        except KitError as e:
            return [Check("docker engine", False, e.message, e.hint or "")]
        checks = [Check("docker engine", True, f"Docker {v.get('Version')} (API {v.get('ApiVersion')})")]
        if options.gpu_list != "none":
            try:
                mode, why = self.choose_access()
                checks.append(Check("gpu access", True, why.removeprefix("GPU access: ")))
            except NotReady as e:
                checks.append(Check("gpu access", False, e.message, e.hint))
        if options.image:
            try:
                images.require(client, options.image)
                checks.append(Check("image", True, f"{options.image} (given with --image)"))
            except KitError as e:
                checks.append(Check("image", False, e.message, e.hint))
        else:
            base = options.vllm_image or images.DEFAULT_VLLM_IMAGE
            present = images.base_present(client, base)
            checks.append(Check("image", True, f"will build the kit image on {base}"
                                + ("" if present else f" (pulled first: {base} is not here)")))
            checks.append(check_image_disk(client, BUILD_DISK_GB if present else PULL_DISK_GB))
        return checks


def check_image_disk(client, need_gb):
    root = client.info().get("DockerRootDir") or "/var/lib/docker"
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return Check("disk for the image", None, f"skipped: cannot read free space of Docker's root dir {root} here")
    detail = f"{free / GB:.0f} GB free in {root} (need {need_gb} GB)"
    return Check("disk for the image", free >= need_gb * GB, detail,
                 "free space there (`docker system prune`) or move Docker's data-root")


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
