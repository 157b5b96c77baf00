"""Host runtime: the workload runs as a subprocess of `kit run` (bare metal, Slurm, no Docker)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parents[2]   # the folder that holds the `kit` package
SHARED_CACHE = Path("~/.cache/sleepkit/compile").expanduser()


def cache_env(root):
    """Point vLLM's, Inductor's and Triton's compile caches into one folder."""
    root = Path(root)
    return {"VLLM_CACHE_ROOT": str(root / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
            "TRITON_CACHE_DIR": str(root / "triton")}


class LocalRuntime:
    name = "local"

    def __init__(self, cache="cold", python=None):
        if cache not in ("cold", "shared"):
            raise ValueError(f"cache must be 'cold' or 'shared', not {cache!r}")
        self.cache = cache
        self.python = python or sys.executable
        self.proc = None

    def run_arm(self, job, out_dir, on_line):
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # cold: every arm compiles from scratch, so arms are compared fairly
        cache = Path(tempfile.mkdtemp(prefix="sleepkit-cache-")) if self.cache == "cold" else SHARED_CACHE
        try:
            return self._run(job, out_dir, on_line, cache_env(cache))
        finally:
            if self.cache == "cold":
                shutil.rmtree(cache, ignore_errors=True)

    def _run(self, job, out_dir, on_line, extra_env):
        env = dict(os.environ, **extra_env, **job.env, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KIT_ROOT), env.get("PYTHONPATH")]))
        cmd = [self.python, "-m", "kit.workload", *job.workload_args, "--out", str(out_dir)]
        with open(out_dir / "workload.log", "a", encoding="utf-8") as log:
            # own session: Ctrl-C reaches `kit run`, which stops the workload in order (stop_run)
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, text=True, start_new_session=True)
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                on_line(line.rstrip("\n"))
            code = self.proc.wait()
        self.proc = None
        return code

    def stop_run(self, run_id, grace=120.0):
        """SIGTERM the workload (it stops its servers), SIGKILL its group if it does not finish."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def describe(self):
        packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                          if d.metadata["Name"])
        return {"name": self.name, "python": sys.version.split()[0], "executable": self.python,
                "cache": self.cache, "compile_cache_dir": str(SHARED_CACHE) if self.cache == "shared" else None,
                "packages": packages}
