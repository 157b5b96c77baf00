"""The Docker runtime against a real engine: image build, one container per arm, results through
get_archive, labels, cleanup, exit statuses, stop_run; and compose.yaml kept in step with the SDK path.

Needs `bash .ci/docker-up.sh` (engine + sleepkit-testbase:bookworm); with CI set, no engine is a failure.
"""
import copy
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import sys
import time

from pathlib import Path

import pytest
import yaml

from conftest import MODEL_A, MODEL_B, ROOT, double_config, kit, kit_cmd, only_run
from docker_fixtures import DOUBLE_IN_IMAGE, STUB_VLLM
from kit import image, run as runner
from kit.errors import BadInput
from kit.gpus import Gpu
from kit.runtimes import ArmJob, gpu_access
from kit.runtimes.common import COMPILE_CACHE_TARGET, HF_CACHE_TARGET, OUT, container_spec
from kit.runtimes.docker import DockerRuntime, run_kwargs
from kit.workload import events, scenarios
from kit.workload.options import ArmOptions

pytestmark = pytest.mark.docker
SECRET = "hf_sleepkit_test_not_a_real_token"


def double_cmd(config):
    return f"python3 {DOUBLE_IN_IMAGE} --config {shlex.quote(json.dumps(config))}"


def job_for(rid, arm="l1", server_cmd="python3 -m vllm.entrypoints.openai.api_server", **extra):
    opts = ArmOptions(arm=arm, run_id=rid, model_a=MODEL_A, model_b=MODEL_B, server_cmd=server_cmd,
                      **({"ready_timeout": 60.0, "call_timeout": 30.0} | extra))
    return ArmJob(run_id=rid, unit=arm, repeat=1, argv=opts.to_argv())


def labelled(client, rid):
    return client.containers.list(all=True, filters={"label": f"sleepkit.run={rid}"})


# -- image ---------------------------------------------------------------------------------------

def test_image_hash_follows_the_container_code_only(tmp_path):
    (tmp_path / "docker").mkdir()
    shutil.copy(ROOT / "docker" / "Dockerfile", tmp_path / "docker" / "Dockerfile")
    shutil.copytree(ROOT / "kit", tmp_path / "kit", ignore=shutil.ignore_patterns("__pycache__"))
    first = image.content_hash("sha256:base1", root=tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}", first) and image.content_hash("sha256:base1", root=tmp_path) == first
    (tmp_path / "kit" / "workload" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "kit" / "workload" / "__pycache__" / "x.pyc").write_bytes(b"bytecode does not count")
    with open(tmp_path / "kit" / "cli.py", "a") as f:
        f.write("\n# host-side code is not in the image\n")
    assert image.content_hash("sha256:base1", root=tmp_path) == first
    assert image.content_hash("sha256:base2", root=tmp_path) != first          # another base image id
    with open(tmp_path / "kit" / "workload" / "runner.py", "a") as f:
        f.write("\n# changed\n")
    assert image.content_hash("sha256:base1", root=tmp_path) != first


def test_build_reads_the_vllm_version_inside_the_base_and_reuses_the_image(docker_client, kit_image, vllm_base):
    assert re.fullmatch(rf"sleepkit:vllm{re.escape(STUB_VLLM)}-kit[\w.]+-[0-9a-f]{{12}}", kit_image), kit_image
    again = image.build_image(vllm_base, client=docker_client, on_line=lambda line: None)
    assert again["tag"] == kit_image and again["built"] is False
    info = image.image_info(again["tag"], docker_client)
    assert info["id"] == again["id"] and info["base_image"] == vllm_base and info["vllm_version"] == STUB_VLLM
    assert info["base_id"] == docker_client.images.get(vllm_base).id
    assert info["base_repo_digest"] is None           # a local build has no repo digest
    config = docker_client.images.get(again["tag"]).attrs["Config"]
    assert config["Entrypoint"] == ["python3", "-m", "kit.workload"]
    assert config["WorkingDir"] == "/sleepkit"
    assert "PYTHONPATH=/opt/sleepkit" in config["Env"]
    assert config["Labels"]["org.opencontainers.image.title"] == "sleepkit"


def test_the_base_images_pythonpath_is_kept(docker_client, vllm_base, tmp_path):
    """An offline vLLM overlay on the base's PYTHONPATH must stay visible behind the kit's."""
    from docker_fixtures import build_from_files
    base = build_from_files(docker_client, {"Dockerfile": f"FROM {vllm_base}\nENV PYTHONPATH=/opt/overlay\n".encode()},
                            "sleepkit-test:overlay-base")
    tag = image.build_image(base, client=docker_client, on_line=lambda line: None)["tag"]
    assert "PYTHONPATH=/opt/sleepkit:/opt/overlay" in docker_client.images.get(tag).attrs["Config"]["Env"]


def test_build_errors_are_clear_and_never_pull(docker_client, vllm_base, testbase, tmp_path):
    with pytest.raises(image.ImageError, match="sleepkit-no-such-base:never is not present"):
        image.build_image("sleepkit-no-such-base:never", client=docker_client, pull=False, on_line=lambda line: None)
    with pytest.raises(image.ImageError, match="has no vLLM that python3 can see"):
        image.build_image(testbase, client=docker_client, on_line=lambda line: None, rebuild=True)
    (tmp_path / "docker").mkdir()
    (tmp_path / "kit" / "workload").mkdir(parents=True)
    (tmp_path / "kit" / "__init__.py").write_text("")
    (tmp_path / "docker" / "Dockerfile").write_text("ARG VLLM_IMAGE\nFROM ${VLLM_IMAGE}\nCOPY no-such-file /x\n")
    with pytest.raises(image.ImageError, match="failed: .*no-such-file"):
        image.build_image(vllm_base, client=docker_client, root=tmp_path, on_line=lambda line: None)
    with pytest.raises(BadInput, match="--image sleepkit-no-such:image: no such image"):
        image.require(docker_client, "sleepkit-no-such:image")


def test_image_holds_only_the_kit_package(docker_client, kit_image):
    out = docker_client.containers.run(kit_image, entrypoint=["sh", "-c"], network_mode="host", remove=True,
                                       command=["ls -A /opt/sleepkit /opt/sleepkit/kit /opt/sleepkit/kit/workload /sleepkit"])
    listing = out.decode()
    assert "runner.py" in listing and "engine.py" in listing and "steps.py" in listing
    for absent in ("tests", "results", ".git", "README.md", "pyproject.toml", "Makefile", "__pycache__", "cli.py",
                   "report", "bundle.py"):
        assert absent not in listing, listing


# -- one arm through the SDK -------------------------------------------------------------------------

def test_run_arm_collects_results_and_removes_the_container(docker_client, double_image, docker_run_id, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    models = tmp_path / "models"
    models.mkdir()
    job = job_for(docker_run_id, "l1", double_cmd(double_config(marker=docker_run_id)))
    job.model_paths = [str(models)]
    rt = DockerRuntime(double_image, hf_cache=tmp_path / "hf", client=docker_client, cache="cold")
    seen, lines = [], []

    def on_line(line):
        lines.append(line)
        if not seen:
            seen.extend(c.attrs for c in labelled(docker_client, docker_run_id))
    out = tmp_path / "out"
    assert rt.run_arm(job, out, on_line) == 0, "\n".join(lines)

    assert {"events.jsonl", "env.json", "server-A.log", "server-B.log", "workload.log"} <= set(os.listdir(out))
    kinds = [e["kind"] for e in events.read(out / "events.jsonl")]
    assert kinds.count("prompt") == 6 and kinds[-1] == "total"
    assert (out / "workload.log").read_text().splitlines() == lines
    assert not labelled(docker_client, docker_run_id)                    # removed

    (attrs,) = seen
    labels = {"sleepkit.run": docker_run_id, "sleepkit.arm": "l1", "sleepkit.repeat": "1"}
    assert labels.items() <= attrs["Config"]["Labels"].items()
    assert attrs["HostConfig"]["NetworkMode"] == "host" and attrs["HostConfig"]["IpcMode"] == "host"
    assert attrs["Config"]["Cmd"] == job.argv + ["--out", OUT, "--stop-on-stdin-eof"]
    assert attrs["Config"]["OpenStdin"] and attrs["Config"]["StdinOnce"]      # closed when kit run is gone
    env = dict(v.split("=", 1) for v in attrs["Config"]["Env"])
    assert env["VLLM_SERVER_DEV_MODE"] == "1" and env["HF_TOKEN"] == SECRET
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[str(models)]["RW"] is False and mounts[HF_CACHE_TARGET]["RW"] is True
    assert OUT not in mounts and COMPILE_CACHE_TARGET not in mounts    # results copied out; cold caches
    assert not attrs["HostConfig"].get("DeviceRequests") and not attrs["HostConfig"].get("Devices")   # no GPU
    for f in out.iterdir():
        assert SECRET not in f.read_text(errors="replace"), f


def test_shared_cache_mounts_one_volume():
    spec = container_spec(job_for("pytest-spec"), "img", cache="shared")
    (vol,) = [m for m in spec["mounts"] if m["type"] == "volume"]
    assert (vol["source"], vol["target"]) == ("sleepkit-compile-cache-gpu-any", COMPILE_CACHE_TARGET)
    assert spec["environment"]["TORCHINDUCTOR_CACHE_DIR"].startswith(COMPILE_CACHE_TARGET + "/")
    assert "HF_TOKEN" not in spec["environment"] and spec["pass_env"] == ["HF_TOKEN"]


def test_failing_workload_returns_its_status_with_the_log_tail(docker_client, double_image, docker_run_id, tmp_path):
    rt = DockerRuntime(double_image, hf_cache=tmp_path / "hf", client=docker_client)
    job = job_for(docker_run_id, "nosleep", "python3 -c 'import sys; print(\"no such model\"); sys.exit(3)'")
    out = tmp_path / "out"
    assert rt.run_arm(job, out, lambda line: None) == 1
    assert "exited with status 3" in runner.last_error(out)
    assert "no such model" in runner.tail(out / "workload.log")
    assert (out / "events.jsonl").exists()
    bad = ArmJob(run_id=docker_run_id, unit="nosleep", repeat=2, argv=["--arm", "no-such-arm"])
    assert rt.run_arm(bad, tmp_path / "bad", lambda line: None) == 2          # argparse usage error
    assert "invalid choice" in (tmp_path / "bad" / "workload.log").read_text()
    assert not labelled(docker_client, docker_run_id)


def test_stop_run_stops_a_running_arm(docker_client, double_image, docker_run_id, tmp_path):
    rt = DockerRuntime(double_image, hf_cache=tmp_path / "hf", client=docker_client)
    job = job_for(docker_run_id, "l1", "python3 -c 'import time; time.sleep(600)'", ready_timeout=600.0)
    result = {}
    worker = threading.Thread(target=lambda: result.update(code=rt.run_arm(job, tmp_path / "out", print)))
    worker.start()
    deadline = time.monotonic() + 60
    while not any(c.status == "running" for c in labelled(docker_client, docker_run_id)):
        assert time.monotonic() < deadline, "the arm's container never ran"
        time.sleep(0.2)
    t0 = time.monotonic()
    rt.stop_run(docker_run_id)
    worker.join(30)
    assert not worker.is_alive()
    assert time.monotonic() - t0 < 15
    assert result["code"] != 0
    assert (tmp_path / "out" / "workload.log").exists()
    assert not labelled(docker_client, docker_run_id)


def test_stop_run_removes_only_that_runs_containers(docker_client, testbase, docker_run_id):
    other = docker_run_id + "-other"
    start = lambda rid, n: docker_client.containers.run(
        testbase, ["sleep", "300"], detach=True, init=True, network_mode="host",
        labels={"sleepkit.run": rid, "sleepkit.arm": "l1", "sleepkit.repeat": str(n)})
    mine = [start(docker_run_id, 1), start(docker_run_id, 2)]
    theirs = start(other, 1)
    try:
        removed = DockerRuntime("unused", client=docker_client).stop_run(docker_run_id)
        assert sorted(removed) == sorted(c.name for c in mine)
        assert not labelled(docker_client, docker_run_id)
        assert [c.id for c in labelled(docker_client, other)] == [theirs.id]
    finally:
        theirs.remove(force=True)


def test_kit_clean_removes_leftovers_of_any_run_and_nothing_else(docker_client, testbase, docker_run_id):
    leftover = docker_client.containers.run(testbase, ["sleep", "300"], detach=True, init=True,
                                            network_mode="host", labels={"sleepkit.run": docker_run_id + "-old"})
    stranger = docker_client.containers.run(testbase, ["sleep", "300"], detach=True, init=True,
                                            network_mode="host", labels={"other.app": "1"})
    try:
        r = kit("clean")
        assert r.returncode == 0, r.stderr
        assert leftover.name in r.stdout
        assert not labelled(docker_client, docker_run_id + "-old")
        stranger.reload()
        assert stranger.status == "running"
    finally:
        stranger.remove(force=True)


# -- whole arms through `kit run --runtime docker` -------------------------------------------------

def docker_run_args(results, image_tag, config, tmp_path):
    return ["--runtime", "docker", "--gpus", "none", "--image", image_tag, "--hf-cache", tmp_path / "hf",
            "--results-dir", results, "--model-a", MODEL_A, "--model-b", MODEL_B,
            "--server-cmd", double_cmd(config)]


def test_kit_run_table1_in_docker(docker_client, double_image, results, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    r = kit("run", "1", *docker_run_args(results, double_image, double_config(marker="docker-t1"), tmp_path),
            "--fixed-output", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(results)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["runtime"]["name"] == "docker" and manifest["runtime"]["image"]["tag"] == double_image
    assert manifest["runtime"]["image"]["base_image"].startswith("sleepkit-test:vllm-stub")
    assert manifest["runtime"]["image"]["vllm_version"] == STUB_VLLM
    for arm in ("l1", "nosleep"):
        evs = events.read(run / arm / "r1" / "events.jsonl")
        assert all(e["ok"] for e in evs), arm
        assert [e["output_tokens"] for e in evs if e["kind"] == "prompt"] == [scenarios.MAX_TOKENS] * 6
        assert (run / arm / "r1" / "server-B.log").exists()
    for f in run.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="replace"), f
    assert not docker_client.containers.list(all=True, filters={"label": f"sleepkit.run={run.name}"})


def test_kit_run_ctrl_c_removes_the_container(docker_client, double_image, results, tmp_path):
    config = copy.deepcopy(double_config(marker="docker-ctrl-c"))    # (it shares conftest.DELAYS)
    config["models"][MODEL_A]["delays"]["startup"] = 600      # server A never gets ready in time
    args = docker_run_args(results, double_image, config, tmp_path)
    proc = subprocess.Popen(kit_cmd("run", "1", *args), cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and any(results.iterdir())
                   and labelled(docker_client, only_run(results).name)):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() else ""
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert not labelled(docker_client, only_run(results).name)


# -- compose.yaml == the SDK path --------------------------------------------------------------------

def resolve_defaults(value):
    """compose interpolation with no variables set: ${VAR:-default} -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value) if isinstance(value, str) else value


def as_options(argv):
    """['--a', 'x', '--flag', ...] -> {'--a': 'x', '--flag': True}: order-insensitive comparison."""
    opts, i = {}, 0
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[argv[i]], i = argv[i + 1], i + 2
        else:
            opts[argv[i]], i = True, i + 1
    return opts


def test_compose_matches_the_sdk_containers():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert list(compose["services"]) == list(scenarios.ARMS)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)[1])
    for arm, svc in compose["services"].items():
        argv = [resolve_defaults(a) for a in svc["entrypoint"]]
        assert argv[:3] == entrypoint
        spec = container_spec(ArmJob("compose", arm, 1, ["--arm", arm, "--run-id", "compose", "--model-a",
                                                          scenarios.MODEL_A, "--model-b", scenarios.MODEL_B,
                                                          "--cold-cache"]),
                              resolve_defaults(svc["image"]), gpu_access.settings("toolkit", [Gpu("all")]), cache="cold")
        assert as_options(argv[3:] + svc["command"]) == as_options(spec["command"])
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in svc["environment"])
        assert env == {**spec["environment"], **{k: None for k in spec["pass_env"]}}
        assert (svc["ipc"], svc["network_mode"], svc["init"]) == (spec["ipc_mode"], spec["network_mode"], spec["init"])
        volumes = dict(reversed(resolve_defaults(v).split(":")) for v in svc["volumes"])
        assert volumes.pop(OUT) == f"./results/compose/{arm}/r1"       # the run layout: `kit adopt` reads it
        assert volumes == {HF_CACHE_TARGET: "~/.cache/huggingface"}
        assert {m["target"] for m in spec["mounts"]} == set(volumes)
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
        # compose's reservation is the toolkit mode's device request for every GPU
        assert spec["gpu"]["device_requests"] == [{"driver": "", "count": -1, "device_ids": [],
                                                   "capabilities": [["gpu"]]}]


# -- kit doctor's checks -----------------------------------------------------------------------------

def test_doctor_checks_say_what_to_do(docker_client, tmp_path):
    from kit import doctor
    from kit.options import RunOptions
    options = RunOptions(tables=(1,), hf_cache=str(tmp_path / "hf"))
    checks = doctor.run_checks(options, tmp_path / "results", DockerRuntime(client=docker_client), env={})
    assert [c.name for c in checks] == ["gpus", "docker engine", "gpu access", "image", "disk for the image",
                                        "models", "results dir"]     # no GPU first: it causes what follows
    by_name = {c.name: c for c in checks}
    assert by_name["docker engine"].ok and by_name["results dir"].ok and by_name["models"].ok
    assert by_name["gpu access"].ok is False and "toolkit: no NVIDIA Container Toolkit" in by_name["gpu access"].detail
    assert "public models need no token" in by_name["models"].detail
    assert "pulled first" in by_name["image"].detail          # the study's image is not here, and nothing pulled it
    for c in checks:
        assert "\n" not in c.line() and (c.ok is not False or c.fix), c
    snapshot = tmp_path / "hf" / "hub" / "models--double--a" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    local = tmp_path / "model-b"
    local.mkdir()
    assert "double/a: HF cache" in doctor.check_models(["double/a", str(local)], tmp_path / "hf" / "hub", env={}).detail
    with_token = doctor.check_models(["other/x"], tmp_path / "hf" / "hub", env={"HF_TOKEN": SECRET})
    assert with_token.ok and SECRET not in with_token.line()
    assert not doctor.check_results_dir("/proc/no-such-dir").ok


def test_preflight_fails_before_anything_is_created_or_pulled(docker_client, results, tmp_path):
    """The default run on a host whose engine cannot give a container the GPU: one line, exit 2, no run
    directory, and the study's vLLM image was not pulled."""
    r = kit("run", "1", "--results-dir", results, "--hf-cache", tmp_path / "hf")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("kit: error: pre-flight: ") and "checks failed" in lines[0]
    assert any(line.startswith("  gpu access: no way to give a container the GPU") for line in lines)
    assert "install the NVIDIA Container Toolkit" in r.stderr and re.search(r"run `.* doctor` for the details", lines[-1])
    assert not results.exists() or not any(results.iterdir())
    assert not docker_client.images.list(name="vllm/vllm-openai") and "pulling" not in r.stdout
    r = kit("run", "1", "--runtime", "docker", "--gpus", "none", "--image", "sleepkit-no-such:image",
            "--results-dir", results, "--server-cmd", "python3 x.py")
    assert r.returncode == 2 and "--image sleepkit-no-such:image: no such image" in r.stderr


def test_devices_mode_container_gets_the_nodes_and_a_read_only_driver(docker_client, kit_image, docker_run_id, tmp_path):
    """The `devices` GPU access through a real engine, with stand-ins: /dev/null as the GPU's node and a
    folder as the driver. Checks what the container sees, not CUDA (no GPU here)."""
    driver = tmp_path / "nvidia"
    (driver / "lib64").mkdir(parents=True)
    (driver / "lib64" / "libcuda.so.1").write_text("stand-in")
    host = gpu_access.Host(nodes=("/dev/null",), control=(), driver_dir=str(driver))
    gpu = gpu_access.settings("devices", [Gpu("0", 0, "GPU-12345678-abcd", "stand-in", None)],
                              gpu_access.Host(nodes=("/dev/nvidia0",), driver_dir=str(driver)))
    gpu["devices"] = ["/dev/null:/dev/nvidia0:rwm"]            # the stand-in node under the GPU's name
    spec = container_spec(job_for(docker_run_id), kit_image, gpu)
    from kit.runtimes.docker import run_kwargs
    kwargs = run_kwargs(spec) | {"entrypoint": ["sh", "-c"], "command": [
        "test -c /dev/nvidia0 && cat /usr/local/nvidia/lib64/libcuda.so.1 && echo \" $LD_LIBRARY_PATH $SLEEPKIT_GPU_UUIDS\""
        " && (touch /usr/local/nvidia/x 2>/dev/null && echo writable || echo read-only)"], "detach": False}
    out = docker_client.containers.run(**kwargs, remove=True).decode()
    assert out.split() == ["stand-in", gpu_access.LIB_PATH, "GPU-12345678-abcd", "read-only"], out
    assert host.driver_dir == str(driver)


# -- kit run SIGKILLed: the container's workload stops its servers --------------------------------------
KILLED_HARNESS = """
import sys, threading
from kit.runtimes import ArmJob
from kit.runtimes.docker import DockerRuntime
job = ArmJob(run_id=sys.argv[2], unit="l1", repeat=1, argv=sys.argv[4:])
lane = threading.Thread(target=DockerRuntime(sys.argv[3], hf_cache=sys.argv[1] + "/hf", cache="cold").run_arm,
                        args=(job, sys.argv[1] + "/out", print))
lane.start()
lane.join()
"""


def test_a_sigkilled_kit_run_leaves_no_workload_running_in_its_container(docker_client, double_image, docker_run_id,
                                                                        tmp_path):
    """docker-py holds the container's stdin (StdinOnce): when kit run dies, stdin closes and the workload
    stops its servers as on SIGTERM, so the container ends within seconds instead of running on."""
    config = double_config(marker=docker_run_id)
    config["models"][MODEL_A]["delays"]["startup"] = 600           # model A's server never gets ready
    argv = job_for(docker_run_id, "l1", double_cmd(config), ready_timeout=900.0).argv
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", KILLED_HARNESS, str(tmp_path), docker_run_id, double_image,
                               *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in parent.stdout:                                  # the workload is loading model A
            if line.startswith("start load A"):
                break
        (container,) = labelled(docker_client, docker_run_id)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 30
        while container.status != "exited" and time.monotonic() < deadline:
            time.sleep(0.2)
            container.reload()
        assert container.status == "exited", "the workload went on after kit run was killed"
        assert "interrupted (SIGTERM)" in container.logs().decode() or "signal" in container.logs().decode()
    finally:
        parent.kill()
        for c in labelled(docker_client, docker_run_id):
            c.remove(force=True)


def test_a_spilled_twin_reads_whole_in_the_arms_container(docker_client, testbase, docker_run_id, tmp_path):
    """scripts/offline/spill-twin.sh keeps a twin bigger than the disk partly on a RAM disk, partly on disk,
    bind-mounted back shard by shard: the arm's container (its model mount, as the runtime makes it) must
    read every shard's bytes."""
    import hashlib
    if os.geteuid() != 0:
        pytest.skip("spill-twin.sh mounts: it needs root")
    ram, disk = tmp_path / "ram", tmp_path / "disk"
    ram.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", str(ram)], check=True)
    twin = ram / "twin"
    try:
        twin.mkdir()
        (twin / "sleepkit-twin.json").write_text("{}")
        shards = {f"model-0000{i}-of-00003.safetensors": os.urandom(1 << 20) for i in (1, 2, 3)}
        for name, data in shards.items():
            (twin / name).write_bytes(data)
        script = ROOT / "scripts" / "offline" / "spill-twin.sh"
        bad = subprocess.run(["bash", script, twin, disk, "lots"], capture_output=True, text=True)
        assert bad.returncode == 2 and "RAM_GB" in bad.stderr and not disk.exists()
        done = subprocess.run(["bash", script, twin, disk, "0.0015"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        moved = sorted(p.name for p in disk.iterdir())
        assert len(moved) == 2 and all(os.path.ismount(twin / name) for name in moved)
        (tmp_path / "hf").mkdir()
        job = dataclasses.replace(job_for(docker_run_id), model_paths=[str(twin)])
        spec = container_spec(job, testbase, hf_cache=tmp_path / "hf",
                              cache="cold")
        args = dict(run_kwargs(spec), command=["sha256sum", *sorted(str(twin / n) for n in shards)],
                    stdin_open=False, detach=True)
        container = docker_client.containers.run(**args)
        try:
            assert container.wait(timeout=60)["StatusCode"] == 0
            seen = {Path(line.split()[1]).name: line.split()[0]
                    for line in container.logs().decode().splitlines()}
        finally:
            container.remove(force=True)
        assert seen == {n: hashlib.sha256(d).hexdigest() for n, d in shards.items()}
        subprocess.run(["bash", script, "--undo", twin], check=True)
        assert not any(os.path.ismount(twin / name) for name in moved)
    finally:
        subprocess.run(["umount", "-R", str(ram)], check=False)
