"""Shared helpers: the vLLM test double as a server command, and the real CLI in a subprocess."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["docker_fixtures", "slurm_fixtures"]     # fixtures shared by the engine and Slurm tests
DOUBLE = ROOT / "tests" / "vllm_double.py"

# Known, distinct delays (seconds) per model: the tests check the kit measures them.
DELAYS = {
    "A": {"startup": 0.6, "first_token": 0.05, "token": 0.002, "sleep_1": 0.15, "sleep_2": 0.05,
          "wake": 0.1, "reload": 0.3, "reset": 0.02, "shutdown": 0.05},
    "B": {"startup": 0.9, "first_token": 0.08, "token": 0.003, "sleep_1": 0.25, "sleep_2": 0.07,
          "wake": 0.2, "reload": 0.4, "reset": 0.03, "shutdown": 0.05},
}
MODEL_A, MODEL_B = "double-model-a", "double-model-b"


def double_config(faults=(), marker="sleepkit-test", weights_mib=64):
    return {"marker": marker, "weights_mib": weights_mib, "faults": list(faults),
            "models": {MODEL_A: {"delays": dict(DELAYS["A"])}, MODEL_B: {"delays": dict(DELAYS["B"])}}}


def server_cmd(config):
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(DOUBLE))} --config {shlex.quote(json.dumps(config))}"


def kit_cmd(*args):
    return [sys.executable, "-m", "kit", *map(str, args)]


def kit(*args, timeout=240, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run(kit_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, **kw)


def run_args(results, config, *extra):
    return ["--runtime", "local", "--results-dir", results, "--model-a", MODEL_A, "--model-b", MODEL_B,
            "--server-cmd", server_cmd(config), *extra]


def leftover_servers(marker):
    """Processes of the double started with this marker that are still alive."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            pass
    return found


def only_run(results):
    runs = [p for p in Path(results).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


@pytest.fixture(autouse=True, scope="session")
def _vllm_cache_root(tmp_path_factory):
    """The double writes vLLM's compile-cache folders (under VLLM_CACHE_ROOT, else ~/.cache/vllm): keep
    the tests' doubles out of the home folder."""
    patch = pytest.MonkeyPatch()
    patch.setenv("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
    yield
    patch.undo()
