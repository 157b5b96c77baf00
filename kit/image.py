"""The sleepkit image: docker/Dockerfile on a pinned vLLM image, tagged by what went into it.

The tag is `sleepkit:vllm<version>-kit<kit version>-<hash>`, where the hash covers the base image
reference, docker/Dockerfile and every file of kit/, so changing the container-side code gives a new tag.
Host side only (docker-py).
"""
import hashlib
import re
from pathlib import Path

from kit import __version__

ROOT = Path(__file__).resolve().parents[1]      # the repository root: the build context
DOCKERFILE = "docker/Dockerfile"
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
LATEST = "sleepkit:latest"     # compose.yaml's default image: the last build on DEFAULT_VLLM_IMAGE
BASE_LABEL = "org.opencontainers.image.base.name"


class ImageError(RuntimeError):
    """The engine is unreachable or a build failed; the message says what to do."""


def connect(timeout=120):
    """A docker-py client, or ImageError with a fix when no engine answers."""
    import docker
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise ImageError(f"cannot reach the Docker engine ({e}); start it (`sudo systemctl start docker`, "
                         "or .ci/docker-up.sh) or point DOCKER_HOST at one") from None


def context_files(root=ROOT):
    """The files the image is built from, sorted: the Dockerfile and kit/ (no bytecode)."""
    root = Path(root)
    kit = [p for p in (root / "kit").rglob("*")
           if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return [root / DOCKERFILE] + sorted(kit)


def content_hash(vllm_image, root=ROOT):
    """12 hex digits over the base image reference and the content of every context file."""
    h = hashlib.sha256(vllm_image.encode() + b"\0")
    for path in context_files(root):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def split_ref(image):
    """'host:5000/vllm/vllm-openai:v0.11.0@sha256:..' -> ('host:5000/vllm/vllm-openai', 'v0.11.0')."""
    name = image.split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, ""


def version_from_image(vllm_image):
    """'vllm/vllm-openai:v0.11.0' -> '0.11.0'; no tag -> 'custom'."""
    return split_ref(vllm_image)[1].removeprefix("v") or "custom"


def image_tag(vllm_image, vllm_version=None, root=ROOT):
    version = re.sub(r"[^A-Za-z0-9_.-]", "_", vllm_version or version_from_image(vllm_image))
    return f"sleepkit:vllm{version}-kit{__version__}-{content_hash(vllm_image, root)}"


def build_image(vllm_image=None, vllm_version=None, rebuild=False, on_line=print, client=None, root=ROOT,
                pull=True):
    """Build the image unless its tag exists (or rebuild). Streams the build output to on_line.

    A base image that is not present is pulled first (pull=False: ImageError instead, no network)."""
    import docker
    vllm_image = vllm_image or DEFAULT_VLLM_IMAGE
    client = client or connect()
    tag = image_tag(vllm_image, vllm_version, root)
    info = {"tag": tag, "vllm_image": vllm_image, "vllm_version": vllm_version or version_from_image(vllm_image),
            "kit_hash": tag.rsplit("-", 1)[1], "built": False}
    if not rebuild:
        try:
            return dict(info, id=tag_latest(client.images.get(tag), vllm_image).id)
        except docker.errors.ImageNotFound:
            pass
    ensure_base(client, vllm_image, pull, on_line)
    on_line(f"building {tag} from {vllm_image}")
    stream = client.api.build(path=str(root), dockerfile=DOCKERFILE, tag=tag, rm=True, forcerm=True,
                              decode=True, buildargs={"VLLM_IMAGE": vllm_image, "KIT_VERSION": __version__,
                                                      "KIT_HASH": info["kit_hash"]},
                              labels={"sleepkit.kit_hash": info["kit_hash"], "sleepkit.vllm_image": vllm_image})
    tail = []
    for chunk in stream:
        if "error" in chunk:
            raise ImageError(f"building {tag} failed: {chunk['error'].strip()}\n" + "\n".join(tail[-10:]))
        for text in chunk.get("stream", "").rstrip("\n").splitlines():
            tail.append(text)
            on_line(text)
    return dict(info, id=tag_latest(client.images.get(tag), vllm_image).id, built=True)


def ensure_base(client, vllm_image, pull, on_line):
    import docker
    try:
        client.images.get(vllm_image)
        return
    except docker.errors.ImageNotFound:
        pass
    fix = "load it first (`docker load -i FILE`) or name a local image with --vllm-image"
    if not pull:
        raise ImageError(f"base image {vllm_image} is not present; {fix}")
    on_line(f"pulling {vllm_image} (the vLLM image is large: minutes)")
    try:
        for chunk in client.api.pull(vllm_image, stream=True, decode=True):
            if "error" in chunk:
                raise ImageError(f"cannot pull {vllm_image}: {chunk['error']}; {fix}")
            if chunk.get("status") and not chunk.get("progress"):
                on_line(f"{chunk.get('id', '')} {chunk['status']}".strip())
    except docker.errors.APIError as e:
        raise ImageError(f"cannot pull {vllm_image}: {e.explanation or e}; {fix}") from None


def tag_latest(image, vllm_image):
    """Point sleepkit:latest at an image built on the study's vLLM image (never at a test build)."""
    if vllm_image == DEFAULT_VLLM_IMAGE:
        image.tag(*LATEST.split(":"))
    return image


def image_info(tag, client=None):
    """For the manifest: the image's id and tag, its base image and the base's repo digest.

    The digest is None for a base that has none (a local build or `docker import`) or is not present."""
    import docker
    client = client or connect()
    image = client.images.get(tag)
    labels = image.labels or {}
    base = labels.get(BASE_LABEL)
    digest = None
    if base:
        try:
            digests = client.images.get(base).attrs.get("RepoDigests") or []
        except docker.errors.ImageNotFound:
            digests = []
        repo = split_ref(base)[0]
        digest = next((d for d in digests if d.split("@")[0] == repo), digests[0] if digests else None)
    return {"id": image.id, "tag": tag, "base_image": base, "base_repo_digest": digest,
            "kit_hash": labels.get("sleepkit.kit_hash"), "created": image.attrs.get("Created")}
