"""The sleepkit image: docker/Dockerfile on a pinned vLLM image, tagged by what went into it.

The tag is `sleepkit:vllm<version>-kit<kit version>-<hash>`: the vLLM version is read from inside the
base image (its installed package metadata), and the hash covers the base image's id, docker/Dockerfile
and the container-side code (kit/__init__.py and kit/workload/), so only a change there gives a new tag.
Host side only (docker-py).
"""
import hashlib
import re
from pathlib import Path

from kit import __version__
from kit.errors import BadInput, ImageError, NotReady

ROOT = Path(__file__).resolve().parents[1]      # the repository root: the build context
DOCKERFILE = "docker/Dockerfile"
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
LATEST = "sleepkit:latest"     # compose.yaml's default image: the last build on DEFAULT_VLLM_IMAGE
BASE_LABEL = "org.opencontainers.image.base.name"
VERSION_PROBE = "import importlib.metadata as m; print(m.version('vllm'))"


def connect(timeout=120):
    """A docker-py client, or NotReady with a fix when no engine answers."""
    import docker
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise NotReady(f"cannot reach the Docker engine ({e})", "start it (`sudo systemctl start docker`, or "
                       ".ci/docker-up.sh), point DOCKER_HOST at one, or run with --runtime local") from None


def context_files(root=ROOT):
    """The files the image is built from, sorted: the Dockerfile and the container-side code."""
    root = Path(root)
    code = [p for p in (root / "kit" / "workload").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return [root / DOCKERFILE, root / "kit" / "__init__.py"] + sorted(code)


def content_hash(base_id, root=ROOT):
    """12 hex digits over the base image's id and the content of every context file."""
    h = hashlib.sha256(base_id.encode() + b"\0")
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


def vllm_version_in(client, image):
    """The vLLM version installed in an image, read by running its python3 (no network, no GPU)."""
    import docker
    try:
        out = client.containers.run(image, ["-c", VERSION_PROBE], entrypoint=["python3"], network_mode="none",
                                    remove=True, stdout=True, stderr=True)
    except docker.errors.ContainerError as e:
        raise ImageError(f"{image} has no vLLM that python3 can see ({(e.stderr or b'').decode()[-200:].strip()})",
                         "give --vllm-image a vLLM image (python3 must import vllm)") from None
    version = out.decode().strip().splitlines()[-1] if out.strip() else ""
    if not re.fullmatch(r"[\w.+-]+", version):
        raise ImageError(f"{image}: could not read the vLLM version (got {version!r})")
    return version


def local_image(client, ref):
    """The image `ref` in this engine, or None when it is not here (nothing is pulled)."""
    import docker
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def find_built(client, kit_hash):
    """The kit image already built for this hash, or None."""
    found = client.images.list(filters={"label": f"sleepkit.kit_hash={kit_hash}"})
    tagged = [i for i in found if any(t.startswith("sleepkit:vllm") for t in i.tags)]
    return tagged[0] if tagged else None


def tag_of(image):
    return next(t for t in image.tags if t.startswith("sleepkit:vllm"))


def build_image(vllm_image=None, rebuild=False, on_line=print, client=None, root=ROOT, pull=True):
    """Build the image unless one exists for this base and code (or rebuild). Streams the build output.

    A base image that is not present is pulled first (pull=False: ImageError instead, no network)."""
    vllm_image = vllm_image or DEFAULT_VLLM_IMAGE
    client = client or connect()
    base = ensure_base(client, vllm_image, pull, on_line)
    kit_hash = content_hash(base.id, root)
    existing = None if rebuild else find_built(client, kit_hash)
    if existing is not None:
        return {"tag": tag_of(tag_latest(existing, vllm_image)), "id": existing.id, "built": False,
                "vllm_image": vllm_image, "kit_hash": kit_hash}
    version = vllm_version_in(client, base.id)
    tag = f"sleepkit:vllm{re.sub(r'[^A-Za-z0-9_.-]', '_', version)}-kit{__version__}-{kit_hash}"
    on_line(f"building {tag} from {vllm_image} (vLLM {version})")
    stream = client.api.build(path=str(root), dockerfile=DOCKERFILE, tag=tag, rm=True, forcerm=True, decode=True,
                              buildargs={"VLLM_IMAGE": vllm_image, "KIT_VERSION": __version__, "KIT_HASH": kit_hash},
                              labels={"sleepkit.kit_hash": kit_hash, "sleepkit.vllm_image": vllm_image,
                                      "sleepkit.vllm_version": version, "sleepkit.base_id": base.id})
    tail = []
    for chunk in stream:
        if "error" in chunk:
            raise ImageError(f"building {tag} failed: {chunk['error'].strip()}\n" + "\n".join(tail[-10:]))
        for text in chunk.get("stream", "").rstrip("\n").splitlines():
            tail.append(text)
            on_line(text)
    built = tag_latest(client.images.get(tag), vllm_image)
    return {"tag": tag, "id": built.id, "built": True, "vllm_image": vllm_image, "kit_hash": kit_hash}


def base_image(vllm_image=None, vllm_version=None):
    """The base `kit build` builds on: vllm_image, or vllm/vllm-openai:v<vllm_version> (None: the default)."""
    if vllm_image and vllm_version:
        raise BadInput("give --vllm-image or --vllm-version, not both")
    if vllm_version and not re.fullmatch(r"\d+\.\d+\.\d+", vllm_version):
        raise BadInput(f"--vllm-version must look like 0.11.0 (got {vllm_version!r})")
    return f"vllm/vllm-openai:v{vllm_version}" if vllm_version else vllm_image


def build(vllm_image=None, vllm_version=None, rebuild=False, on_line=print):
    """`kit build`: build_image on that base; the line that names the image and says whether it was built."""
    info = build_image(base_image(vllm_image, vllm_version), rebuild=rebuild, on_line=on_line)
    return f"{info['tag']} ({'built' if info['built'] else 'exists, not rebuilt'}) {info['id']}"


def ensure_base(client, vllm_image, pull, on_line):
    import docker
    base = local_image(client, vllm_image)
    if base is not None:
        return base
    fix = "load it first (`docker load -i FILE`) or name a local image with --vllm-image"
    if not pull:
        raise ImageError(f"base image {vllm_image} is not present", fix)
    on_line(f"pulling {vllm_image} (the vLLM image is large: minutes)")
    try:
        for chunk in client.api.pull(vllm_image, stream=True, decode=True):
            if "error" in chunk:
                raise ImageError(f"cannot pull {vllm_image}: {chunk['error']}", fix)
            if chunk.get("status") and not chunk.get("progress"):
                on_line(f"{chunk.get('id', '')} {chunk['status']}".strip())
        return client.images.get(vllm_image)
    except docker.errors.APIError as e:
        raise ImageError(f"cannot pull {vllm_image}: {e.explanation or e}", fix) from None


def tag_latest(image, vllm_image):
    """Point sleepkit:latest at an image built on the study's vLLM image (never at a test build)."""
    if vllm_image == DEFAULT_VLLM_IMAGE:
        image.tag(*LATEST.split(":"))
    return image


def require(client, tag):
    """An image given with --image must exist here (nothing is pulled for it)."""
    import docker
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise BadInput(f"--image {tag}: no such image in this Docker engine",
                       "build one with `kit build`, or leave out --image") from None
    except docker.errors.APIError as e:
        raise BadInput(f"--image {tag}: {e.explanation or e}") from None


def base_present(client, vllm_image):
    """Whether the base image vllm_image (a name: the caller resolves the default) is in this engine."""
    return local_image(client, vllm_image) is not None


def image_info(tag, client=None):
    """For the manifest: the image's id and tag, its base image (name, id, repo digest) and vLLM version.

    The digest is None for a base that has none (a local build or `docker import`) or is not present."""
    client = client or connect()
    image = client.images.get(tag)
    labels = image.labels or {}
    base = labels.get(BASE_LABEL)
    digest = None
    if base:
        found = local_image(client, base)
        digests = (found.attrs.get("RepoDigests") or []) if found is not None else []
        repo = split_ref(base)[0]
        digest = next((d for d in digests if d.split("@")[0] == repo), digests[0] if digests else None)
    return {"id": image.id, "tag": tag, "base_image": base, "base_id": labels.get("sleepkit.base_id"),
            "base_repo_digest": digest, "vllm_version": labels.get("sleepkit.vllm_version"),
            "kit_hash": labels.get("sleepkit.kit_hash"), "created": image.attrs.get("Created")}
