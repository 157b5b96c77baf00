"""Can a run start here? `kit doctor` prints these checks; `kit run` runs them first (its pre-flight): every
check runs, and any failure stops the run with a checklist (one line per failed check with its fix, the root
cause first) before a run directory exists or anything is pulled or built.

Which checks apply depends on what runs: the GPU and vLLM checks belong to vLLM's server and to Docker
GPU access; with another --server-cmd (the test double) they are skipped where they cannot run, and say why.
run_checks() only looks: it starts no container, downloads nothing and writes nothing but a probe file
in the results dir (removed at once).
"""
import os
import shutil
import tempfile
from pathlib import Path

from kit import gpus as host_gpus
from kit import hints, plan
from kit.checks import GB, Check, runs_vllm
from kit.errors import Checklist, KitError
from kit.runtimes import get_runtime

RESULTS_DISK_GB = 1     # a run's files: events and logs are well under 100 MB even for --all --repeat 10


TEST_DOUBLE = "test double (no GPU, no vLLM)"


def stand_in(options):
    """What a run's records call a server that is not vLLM's (None for vLLM's): its numbers are no result."""
    if runs_vllm(options):
        return None
    return TEST_DOUBLE if "vllm_double" in options.server_cmd else f"stand-in server, not vLLM ({options.server_cmd})"


def run_checks(options, results_dir, runtime=None, env=os.environ):
    """Every check that applies to these options (kit.options.RunOptions), root causes first."""
    runtime = runtime or get_runtime(options)
    return [c for checks in CHECKS for c in checks(options, results_dir, runtime, env)]


def gpu_checks(options, results_dir, runtime, env):
    return [check_gpus(options, runtime)] if runtime.uses_host_gpus else []    # else the runtime checks its GPUs


def runtime_checks(options, results_dir, runtime, env):
    return runtime.doctor_checks(options, results_dir)


def model_checks(options, results_dir, runtime, env):
    models = options.sweep_models or (options.model_a, options.model_b)     # a sweep's, or the study's A and B
    return [check_models(models, runtime.hub_dir(options, env), env)]


def results_checks(options, results_dir, runtime, env):
    return [check_results_dir(results_dir)]


# Each takes (options, results_dir, runtime, env) and returns its Checks. No GPU or no driver comes first:
# it is the cause of the GPU access, image and vLLM failures that follow it (in the runtime's checks).
CHECKS = [gpu_checks, runtime_checks, model_checks, results_checks]


def preflight(options, results_dir, runtime=None):
    """The checks when all passed or were skipped; else a Checklist: one line per failed check with its fix,
    in CHECKS' order (the root cause first), then where the details are."""
    checks = run_checks(options, results_dir, runtime)
    failed = [c for c in checks if c.ok is False]
    if failed:
        raise Checklist(f"pre-flight: {len(failed)} of {len(checks)} checks failed; nothing was created",
                        [f"{c.name}: {summary(c.detail)}" + (f" -> {c.fix}" if c.fix else "") for c in failed],
                        f"run `{hints.doctor_command(options.runtime)}` for the details")
    return checks


def summary(detail, most=100):
    """A long detail without its long parenthesised particulars (`kit doctor` prints them whole); a short one,
    such as the OS's reason, stays."""
    head, paren, rest = detail.partition(" (")
    if len(detail) <= most or not paren or len(rest.split(")", 1)[0]) <= 40:
        return detail
    return head + " (...)"


# -- gpus -------------------------------------------------------------------------------------------
def check_gpus(options, runtime):
    needed = runs_vllm(options) or runtime.needs_host_gpu(options)
    found = host_gpus.nvml_gpus()
    if found is None:
        if not needed:
            return Check("gpus", None, "skipped: no NVML here, and the server (--server-cmd) needs no GPU")
        return Check("gpus", False, "NVML does not start (no NVIDIA driver, or no GPU)",
                     "install the NVIDIA driver; `nvidia-smi` must list the GPU")
    if not found:
        return Check("gpus", False, "NVML sees no GPU", "check `nvidia-smi`")
    try:
        chosen = host_gpus.resolve(options.gpu_list, found)
    except KitError as e:
        return Check("gpus", False, e.message, e.hint)
    share = plan.gpu_share(plan.units(options))
    busy = [r for r in (host_gpus.busy_reason(g, share) for g in chosen) if r]
    names = "; ".join(f"{g.id}: {g.name}" for g in chosen)
    if chosen and len(busy) == len(chosen):
        return Check("gpus", False, busy[0], "stop what uses the GPU (see `nvidia-smi`) or pick others with --gpus")
    detail = f"{len(chosen)} GPU(s) for this run: {names}" + (f" ({len(busy)} busy: {busy[0]})" if busy else "")
    return Check("gpus", True, detail)


# -- models and results -------------------------------------------------------------------------------
def model_source(model, hub):
    """'local dir', 'HF cache' or None (the servers download it at run time)."""
    if Path(model).expanduser().is_dir():
        return "local dir"
    if any((hub / f"models--{model.replace('/', '--')}" / "snapshots").glob("*/config.json")):
        return "HF cache"
    return None


def check_models(models, hub, env=os.environ):
    try:
        sources = {m: model_source(m, hub) for m in models}
    except OSError as e:       # an unreadable cache (another user's, or a folder without x permission)
        return Check("models", False, f"cannot read {e.filename or hub} ({e.strerror})",
                     f"make the Hugging Face cache {hub} readable for this user, or point HF_HOME / HF_HUB_CACHE "
                     "(docker: --hf-cache) at a cache you can read")
    detail = "; ".join(f"{m}: {s or 'not in ' + str(hub) + ', the servers download it'}" for m, s in sources.items())
    if all(sources.values()):
        return Check("models", True, detail)
    note = "HF_TOKEN is set" if env.get("HF_TOKEN") else "public models need no token; set HF_TOKEN for gated ones"
    return Check("models", True, f"{detail} ({note})")


def check_results_dir(results_dir):
    path = Path(results_dir).expanduser()
    probe_dir = path
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    fix = f"pass --results-dir DIR with a folder you can write, or fix the permissions of {probe_dir}"
    if not probe_dir.is_dir():
        return Check("results dir", False, f"{probe_dir} is not a folder", fix)
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".kit-doctor-"):
            pass
    except OSError as e:
        return Check("results dir", False, f"cannot write in {probe_dir} ({e.strerror})", fix)
    free = shutil.disk_usage(probe_dir).free
    room = f"{free / GB:.1f} GB free (need {RESULTS_DISK_GB} GB)"
    if free < RESULTS_DISK_GB * GB:
        return Check("results dir", False, f"{probe_dir} has {room}",
                     "free space there, or pass --results-dir DIR on a disk with room")
    return Check("results dir", True, (f"{path} is writable" if probe_dir == path else f"{path} can be created")
                 + f", {room}")

