"""Fixtures for the integration tests that drive a real Docker engine (.ci/docker-up.sh starts one).

With no engine (or no test base image) the tests FAIL when CI is set and are skipped otherwise.
Images: sleepkit-testbase:bookworm (Debian + python3 + psutil, made by docker-up.sh); a "vLLM base"
on it that holds only vLLM's package metadata (version STUB_VLLM, so the kit reads a version from inside
it as it does from a real vLLM image); the kit image built on that; and a derived image that adds
tests/vllm_double.py at /opt/sleepkit-tests/.
"""
import hashlib
import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest

TESTBASE = os.environ.get("SLEEPKIT_TESTBASE", "sleepkit-testbase:bookworm")
DOUBLE_SRC = Path(__file__).resolve().parent / "vllm_double.py"
DOUBLE_IN_IMAGE = "/opt/sleepkit-tests/vllm_double.py"
STUB_VLLM = "0.24.0"
STUB_METADATA = "/usr/lib/python3/dist-packages/vllm-{v}.dist-info/METADATA"


def unavailable(why, fix="start one with `bash .ci/docker-up.sh`"):
    """Something the tests need is not here: a failure in CI (never a silent skip), a skip on a developer's
    machine."""
    why += f"; {fix}"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def docker_client():
    from kit.errors import NotReady
    from kit.image import connect
    try:
        client = connect(timeout=60)
    except NotReady as e:      # what connect() raises when no engine answers
        unavailable(e.message)
    yield client
    client.close()


@pytest.fixture(scope="session")
def testbase(docker_client):
    """The local base image; checked first because the engine would try to pull a missing one."""
    import docker
    try:
        docker_client.images.get(TESTBASE)
    except docker.errors.ImageNotFound:
        unavailable(f"the test base image {TESTBASE} is missing")
    return TESTBASE


def build_from_files(client, files, tag):
    """docker build of an in-memory context {name: bytes} (a Dockerfile among them)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    return tag


@pytest.fixture(scope="session")
def vllm_base(docker_client, testbase):
    """The test base plus vLLM's package metadata (no vLLM code): what `kit build` reads the version from."""
    meta = f"Metadata-Version: 2.1\nName: vllm\nVersion: {STUB_VLLM}\n".encode()
    dockerfile = f"FROM {testbase}\nCOPY METADATA {STUB_METADATA.format(v=STUB_VLLM)}\n".encode()
    return build_from_files(docker_client, {"Dockerfile": dockerfile, "METADATA": meta},
                            f"sleepkit-test:vllm-stub-{STUB_VLLM}")


@pytest.fixture(scope="session")
def kit_image(docker_client, vllm_base):
    from kit.image import build_image
    return build_image(vllm_base, client=docker_client, on_line=lambda line: None)["tag"]


@pytest.fixture(scope="session")
def double_image(docker_client, kit_image):
    """The kit image plus the vLLM test double, built from an in-memory context."""
    dockerfile = f"FROM {kit_image}\nCOPY vllm_double.py {DOUBLE_IN_IMAGE}\n".encode()
    files = {"Dockerfile": dockerfile, "vllm_double.py": DOUBLE_SRC.read_bytes()}
    digest = hashlib.sha256(b"".join(files.values())).hexdigest()[:12]
    return build_from_files(docker_client, files, f"sleepkit-test:double-{digest}")


@pytest.fixture
def docker_run_id(docker_client):
    """A fresh run id; every container still labelled with it afterwards is a test failure (and removed)."""
    rid = f"pytest-{uuid.uuid4().hex[:10]}"
    yield rid
    left = docker_client.containers.list(all=True, filters={"label": f"sleepkit.run={rid}"})
    for c in left:
        c.remove(force=True)
    assert not left, f"containers of run {rid} left behind: {[c.name for c in left]}"
