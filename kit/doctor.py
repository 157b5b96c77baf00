"""Can a run start here? `kit doctor` prints these checks; `kit run` runs them first (its pre-flight): every
check runs, and any failure stops the run with a checklist (one line per failed check with its fix, the root
cause first) before a run directory exists or anything is pulled or built.

Which checks apply depends on what runs: the GPU and vLLM checks belong to vLLM's server and to Docker
GPU access; with another --server-cmd (the test double) they are skipped where they cannot run, and say why.
run_checks() only looks: it starts no container, downloads nothing and writes nothing but a probe file
in the results dir (removed at once).
"""
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from kit import gpus as host_gpus
from kit import hints
from kit.checks import Check
from kit import image as images
from kit.errors import Checklist, KitError, NotReady
from kit.options import parse_gpus

PULL_DISK_GB = 30       # a vLLM image pulled and unpacked, plus the kit's layer and build room
BUILD_DISK_GB = 2       # the kit's own layer on a base image already here
RESULTS_DISK_GB = 1     # a run's files: events and logs are well under 100 MB even for --all --repeat 10
GB = 1e9


def runs_vllm(options):
    """Is the server vLLM's (`python3 -m vllm.entrypoints...` or `vllm serve`), not a stand-in?"""
    argv = shlex.split(options.server_cmd)
    return any(a.startswith("vllm.entrypoints") for a in argv) or Path(argv[0]).name == "vllm"


TEST_DOUBLE = "test double (no GPU, no vLLM)"


def stand_in(options):
    """What a run's records call a server that is not vLLM's (None for vLLM's): its numbers are no result."""
    if runs_vllm(options):
        return None
    return TEST_DOUBLE if "vllm_double" in options.server_cmd else f"stand-in server, not vLLM ({options.server_cmd})"


def run_checks(options, results_dir, runtime=None, env=os.environ):
    """Every check that applies to these options (kit.options.RunOptions), root causes first."""
    return [c for checks in CHECKS for c in checks(options, results_dir, runtime, env)]


def gpu_checks(options, results_dir, runtime, env):
    return [] if options.runtime == "slurm" else [check_gpus(options)]      # Slurm's probe job checks its GPU


def runtime_checks(options, results_dir, runtime, env):
    if options.runtime == "docker":
        return docker_checks(options, runtime)
    if options.runtime == "slurm":
        return runtime.doctor_checks(results_dir)
    return []


def vllm_checks(options, results_dir, runtime, env):
    if options.runtime != "local":
        return []
    return [check_vllm_import(options.server_cmd) if runs_vllm(options) else
            Check("vllm", None, "skipped: --server-cmd is not vLLM's server")]


def model_checks(options, results_dir, runtime, env):
    models = options.sweep_models or (options.model_a, options.model_b)     # a sweep's, or the study's A and B
    return [check_models(models, hub_dir(options.runtime, options.hf_cache, env), env)]


def results_checks(options, results_dir, runtime, env):
    return [check_results_dir(results_dir)]


# Each takes (options, results_dir, runtime, env) and returns its Checks. No GPU or no driver comes first:
# it is the cause of the GPU access, image and vLLM failures that follow it.
CHECKS = [gpu_checks, runtime_checks, vllm_checks, model_checks, results_checks]


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


# -- docker -----------------------------------------------------------------------------------------
def docker_checks(options, runtime):
    try:
        client = runtime.client
        v = client.version()
    except KitError as e:
        return [Check("docker engine", False, e.message, e.hint or "")]
    checks = [Check("docker engine", True, f"Docker {v.get('Version')} (API {v.get('ApiVersion')})")]
    if parse_gpus(options.gpus) != "none":
        try:
            mode, why = runtime.choose_access()
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


# -- local ------------------------------------------------------------------------------------------
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


# -- gpus -------------------------------------------------------------------------------------------
def check_gpus(options):
    needed = runs_vllm(options) or (options.runtime == "docker" and parse_gpus(options.gpus) != "none")
    found = host_gpus.nvml_gpus()
    if found is None:
        if not needed:
            return Check("gpus", None, "skipped: no NVML here, and the server (--server-cmd) needs no GPU")
        return Check("gpus", False, "NVML does not start (no NVIDIA driver, or no GPU)",
                     "install the NVIDIA driver; `nvidia-smi` must list the GPU")
    if not found:
        return Check("gpus", False, "NVML sees no GPU", "check `nvidia-smi`")
    try:
        chosen = host_gpus.resolve(parse_gpus(options.gpus), found)
    except KitError as e:
        return Check("gpus", False, e.message, e.hint)
    busy = [r for r in (host_gpus.busy_reason(g) for g in chosen) if r]
    names = "; ".join(f"{g.id}: {g.name}" for g in chosen)
    if chosen and len(busy) == len(chosen):
        return Check("gpus", False, busy[0], "stop what uses the GPU (see `nvidia-smi`) or pick others with --gpus")
    detail = f"{len(chosen)} GPU(s) for this run: {names}" + (f" ({len(busy)} busy: {busy[0]})" if busy else "")
    return Check("gpus", True, detail)


# -- models and results -------------------------------------------------------------------------------
def hub_dir(runtime, hf_cache, env=os.environ):
    """Where the servers will look for downloaded models: the mounted cache, or the host's own."""
    if runtime == "docker":
        return Path(hf_cache).expanduser() / "hub"
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    return Path(env.get("HF_HOME") or "~/.cache/huggingface").expanduser() / "hub"


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

