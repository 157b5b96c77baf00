"""Where a server's compile caches go (vLLM's, Inductor's, Triton's), and `--cache cold`'s empty ones.

    cache_env(root)          the environment that points all three caches into one folder
    ColdCaches(root).new()   an empty cache folder for one server start; .remove(path) after its stop

A cold folder is held with an flock on its `.owner` file while its workload lives; sweep() removes the
folders whose owner died without cleaning up (a SIGKILLed workload), so the next start cleans them.
Container side: standard library only.
"""
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

OWNER = ".owner"


def cache_env(root):
    root = Path(root)
    return {"VLLM_CACHE_ROOT": str(root / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
            "TRITON_CACHE_DIR": str(root / "triton")}


def default_root():
    return Path(tempfile.gettempdir()) / "sleepkit-cold-caches"


class ColdCaches:
    def __init__(self, root=None):
        self.root = Path(root or default_root())
        self.held = {}        # path -> open .owner file (its flock marks the folder as in use)

    def new(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root))
        owner = open(path / OWNER, "w")
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.held[path] = owner
        return path

    def remove(self, path):
        owner = self.held.pop(Path(path), None)
        if owner:
            owner.close()
        shutil.rmtree(path, ignore_errors=True)

    def remove_all(self):
        for path in list(self.held):
            self.remove(path)

    def sweep(self):
        """Remove the folders no living workload holds."""
        for path in self.root.iterdir() if self.root.is_dir() else ():
            if path in self.held or not path.is_dir():
                continue
            try:
                with open(path / OWNER) as owner:
                    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue                       # a living workload's
            except FileNotFoundError:          # being made right now, or left half-made long ago
                if _age(path) < 60:
                    continue
            shutil.rmtree(path, ignore_errors=True)


def _age(path):
    """Seconds since the folder changed; 0 if it is gone (another workload's sweep removed it meanwhile)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
