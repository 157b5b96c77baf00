"""Host runtime: the workload runs as a subprocess of `kit run` (bare metal, a Slurm job, no Docker)."""
import os
import shlex
import signal
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

from kit.checks import Check, runs_vllm
from kit.runtimes.base import Runtime
from kit.runtimes.common import KIT_ROOT, cache_slot
from kit.workload.compilecache import cache_env
from kit.workload.engine import die_with_parent

SHARED_CACHE = Path("~/.cache/sleepkit/compile").expanduser()


def gpu_env(gpu):
    """The workload (and its servers) see exactly this GPU, numbered as NVML numbers it; the workload
    reads the memory of this GPU only (SLEEPKIT_GPU_UUIDS)."""
    if gpu is None or gpu.id == "all":
        return {}
    env = {"CUDA_VISIBLE_DEVICES": gpu.visible, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    return env | ({"SLEEPKIT_GPU_UUIDS": gpu.uuid} if gpu.uuid else {})


class LocalRuntime(Runtime):
    name = "local"
    summary = "the workload runs on this host"

    def __init__(self, cache="warm", python=None):
        self.cache = cache
        self.python = python or sys.executable
        self.procs = {}
        self.lock = threading.Lock()

    @classmethod
    def from_options(cls, options, on_build_line=print):
        return cls(cache=options.cache)

    def doctor_checks(self, options, results_dir):
        """The servers run here: vLLM must import with their Python."""
        return [check_vllm_import(options.server_cmd) if runs_vllm(options) else
                Check("vllm", None, "skipped: --server-cmd is not vLLM's server")]

    def run_arm(self, job, out_dir, on_line):
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # cold: the workload gives every server start empty caches of its own
        cache = {} if self.cache == "cold" else cache_env(SHARED_CACHE / cache_slot(job.gpu))
        return self._run(job, out_dir, on_line, {**cache, **gpu_env(job.gpu)})

    def _run(self, job, out_dir, on_line, extra_env):
        env = dict(os.environ, **extra_env, **job.env, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KIT_ROOT), env.get("PYTHONPATH")]))
        cmd = [self.python, "-m", "kit.workload", *job.argv, "--out", str(out_dir)]
        # unbuffered: a write that fails (a full disk) leaves nothing for close() to flush
        with open(out_dir / "workload.log", "ab", buffering=0) as log:
            # own session: Ctrl-C reaches `kit run`, which stops the workload in order (stop_run); if `kit run`
            # dies without that (SIGKILL), the workload gets SIGTERM and stops its servers
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                                    preexec_fn=die_with_parent)
            with self.lock:
                self.procs[id(job)] = proc
            try:
                unwritten = None   # a full disk: the workload still runs to its end (and stops its servers)
                for line in proc.stdout:
                    if unwritten is None:
                        try:
                            log.write(line.encode("utf-8", "replace"))
                        except OSError as e:
                            unwritten = e
                    on_line(line.rstrip("\n"))
                code = proc.wait()
                if unwritten is not None:
                    unwritten.filename = unwritten.filename or str(out_dir / "workload.log")
                    raise unwritten
                return code
            finally:
                with self.lock:
                    self.procs.pop(id(job), None)

    def stop_run(self, run_id, grace=120.0):
        """SIGTERM every workload of the run (each stops its servers), SIGKILL a group that does not finish."""
        with self.lock:
            procs = list(self.procs.values())
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def describe(self):
        packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                          if d.metadata["Name"])
        return {"name": self.name, "python": sys.version.split()[0], "executable": self.python,
                "cache": self.cache, "compile_cache_dir": f"{SHARED_CACHE}/gpu<id>" if self.cache != "cold" else None,
                "packages": packages}


def check_vllm_import(server_cmd):
    """vLLM must import, with the Python the server command runs."""
    argv = shlex.split(server_cmd)
    python = argv[0] if "python" in Path(argv[0]).name else "python3"
    probe = "import importlib.metadata as m, vllm; print(m.version('vllm'))"
    fix = f"install vLLM for {python} (docs/offline-gpu.md for hosts without network), or pass --server-cmd"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check("vllm", False, f"{python} could not be run ({e})", fix)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("vllm", False, f"{python} cannot import vllm ({last})", fix)
    return Check("vllm", True, f"vLLM {out.stdout.strip()} imports with {python}")
