"""Fixtures for the tests that drive a real one-node Slurm cluster (.ci/slurm-up.sh starts one).

With no cluster the tests FAIL when CI is set and are skipped otherwise (like docker_fixtures.py).
slurm-up.sh gives the node two stand-in GPUs (gres files /dev/null and /dev/zero, so CUDA_VISIBLE_DEVICES is
0 or 1) and, for podman, the CDI devices sleepkit.test/gpu=0|1 (/dev/sleepkit-gpu0|1 in the container).
"""
import os
import shutil
import subprocess
import time
import uuid

import pytest

import docker_fixtures
from docker_fixtures import DOUBLE_IN_IMAGE  # noqa: F401 (the tests import it from here)

CDI_KIND = "sleepkit.test/gpu"
CDI_SPEC = "/etc/cdi/sleepkit-test.yaml"


def unavailable(why, fix="start one with `bash .ci/slurm-up.sh`"):
    docker_fixtures.unavailable(why, fix)


def squeue(*args):
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=30)


def jobs_of(run_id):
    """(id, state) of the queued jobs whose comment names the run."""
    r = squeue("--me", "-o", "%i|%T|%k")
    return [tuple(line.split("|")[:2]) for line in r.stdout.splitlines()
            if line.split("|")[-1].startswith(f"sleepkit run={run_id} ")]


def wait_for(condition, timeout, what, poll_s=0.2):
    """Poll condition() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s", pytrace=False)
        time.sleep(poll_s)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The partition's name once sinfo answers and shows a node with gpu gres."""
    if not shutil.which("sbatch"):
        unavailable("the Slurm client tools are not installed")
    r = subprocess.run(["sinfo", "-h", "-o", "%P|%a|%G|%t"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        unavailable(f"no Slurm controller answers ({r.stderr.strip()})")
    rows = [line.split("|") for line in r.stdout.splitlines()]
    usable = [p for p, avail, gres, state in rows
              if avail == "up" and "gpu" in gres and state in ("idle", "mix", "alloc")]
    if not usable:
        unavailable(f"no partition is up with a gpu gres node: {r.stdout.strip()!r}")
    return usable[0].rstrip("*")


@pytest.fixture
def slurm_run_id(slurm_cluster):
    """A fresh run id; any job of it still queued afterwards is a failure (and is cancelled)."""
    rid = f"pytest-{uuid.uuid4().hex[:10]}"
    yield rid
    left = jobs_of(rid)
    if left:
        subprocess.run(["scancel", *[i for i, _ in left]], timeout=30)
    assert not left, f"jobs of run {rid} left in squeue: {left}"


@pytest.fixture(scope="session")
def docker_image(double_image):
    """The kit image with the vLLM double at DOUBLE_IN_IMAGE (tests/docker_fixtures.py), in Docker's store."""
    return double_image


@pytest.fixture(scope="session")
def podman_image(docker_image):
    """The Docker test image (kit + vLLM double) copied into podman's store; its podman image id."""
    if not shutil.which("podman"):
        unavailable("podman is not installed", "`bash .ci/slurm-up.sh` installs it")
    if not os.path.exists(CDI_SPEC):
        unavailable(f"no CDI spec {CDI_SPEC} for the stand-in GPUs", "`bash .ci/slurm-up.sh` writes it")
    r = subprocess.run(["podman", "pull", "-q", f"docker-daemon:{docker_image}"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[-1]
