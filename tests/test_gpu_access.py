"""How a job's GPU reaches its servers: the Docker specs (toolkit, CDI, devices), the host runtime's
environment, one compile cache per GPU on every runtime, and which mode `auto` picks."""
import pytest

from kit.errors import NotReady
from kit.gpus import Gpu
from kit.runtimes import gpu_access


HOST = gpu_access.Host(nodes=("/dev/nvidia0", "/dev/nvidia1"), control=gpu_access.CONTROL_NODES,
                       driver_dir="/usr/local/nvidia", smi="/usr/local/nvidia/bin/nvidia-smi")
G1 = Gpu("1", 1, "GPU-1111aaaa-bbbb", "NVIDIA H200", 1)


def test_toolkit_spec_is_what_docker_run_gpus_sends():
    all_ = gpu_access.settings("toolkit", [Gpu("all")])
    assert all_["device_requests"] == [{"driver": "", "count": -1, "device_ids": [], "capabilities": [["gpu"]]}]
    one = gpu_access.settings("toolkit", [G1])
    assert one["device_requests"][0]["device_ids"] == ["GPU-1111aaaa-bbbb"] and one["devices"] == []


def test_cdi_spec_names_cdi_devices():
    assert gpu_access.settings("cdi", [G1])["device_requests"] == [
        {"driver": "cdi", "count": 0, "device_ids": ["nvidia.com/gpu=GPU-1111aaaa-bbbb"], "capabilities": []}]
    assert gpu_access.settings("cdi", [Gpu("all")])["device_requests"][0]["device_ids"] == ["nvidia.com/gpu=all"]


def test_devices_spec_passes_nodes_and_mounts_the_driver_read_only():
    spec = gpu_access.settings("devices", [G1], HOST)
    assert spec["devices"] == ["/dev/nvidia1:/dev/nvidia1:rwm", "/dev/nvidiactl:/dev/nvidiactl:rwm",
                               "/dev/nvidia-uvm:/dev/nvidia-uvm:rwm", "/dev/nvidia-uvm-tools:/dev/nvidia-uvm-tools:rwm"]
    assert spec["mounts"] == [{"type": "bind", "source": "/usr/local/nvidia", "target": "/usr/local/nvidia",
                               "read_only": True}]
    # only its GPU is in the container, as device 0: no CUDA_VISIBLE_DEVICES; the workload reads that GPU's memory
    assert spec["environment"] == {"LD_LIBRARY_PATH": gpu_access.LIB_PATH, "SLEEPKIT_GPU_UUIDS": "GPU-1111aaaa-bbbb"}
    every = gpu_access.settings("devices", [Gpu("all")], HOST)
    assert every["devices"][:2] == ["/dev/nvidia0:/dev/nvidia0:rwm", "/dev/nvidia1:/dev/nvidia1:rwm"]


def test_devices_spec_from_the_ldconfig_cache(tmp_path):
    lib = tmp_path / "libcuda.so.580.1"
    lib.write_text("")
    host = gpu_access.Host(nodes=("/dev/nvidia0",), control=("/dev/nvidiactl",),
                           libraries={"libcuda.so.1": str(lib)}, smi=str(tmp_path / "nvidia-smi"))
    targets = {m["target"]: m for m in gpu_access.settings("devices", [Gpu("0")], host)["mounts"]}
    assert targets["/usr/local/nvidia/lib64/libcuda.so.1"]["source"] == str(lib)
    assert "/usr/local/nvidia/lib64/libcuda.so" in targets and "/usr/local/nvidia/bin/nvidia-smi" in targets
    assert all(m["read_only"] for m in targets.values())


def test_host_runtime_gives_vllm_an_index_and_the_workload_the_uuid():
    from kit.runtimes.local import gpu_env
    from kit.workload import memory
    env = gpu_env(G1)
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "SLEEPKIT_GPU_UUIDS": "GPU-1111aaaa-bbbb"}
    assert gpu_env(Gpu("3")) == {"CUDA_VISIBLE_DEVICES": "3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}   # no NVML: as given
    assert gpu_env(Gpu("all")) == {} and gpu_env(None) == {}
    assert memory.visible_ids(env) == ["GPU-1111aaaa-bbbb"] and memory.visible_ids({"CUDA_VISIBLE_DEVICES": "0,2"}) == ["0", "2"]
    assert memory.visible_ids({}) is None


def test_a_shared_compile_cache_is_one_per_gpu(monkeypatch, tmp_path):
    """Servers starting at once on two GPUs never write one compile cache (vLLM 0.11.0 clobbers it), on
    every runtime; jobs on one GPU, which run one after another, share theirs."""
    import subprocess
    from types import SimpleNamespace
    from kit.runtimes import ArmJob, common, docker, local
    from kit.runtimes.slurm import script
    rt, seen = local.LocalRuntime(cache="shared"), []
    monkeypatch.setattr(rt, "_run", lambda job, out, on_line, env: seen.append(env["VLLM_CACHE_ROOT"]) or 0)
    jobs = [ArmJob(run_id="r", unit="l1", repeat=1, argv=[], gpu=g) for g in (Gpu("0"), G1, Gpu("0"), None)]
    for job in jobs:
        rt.run_arm(job, tmp_path / "out", print)
    assert seen[0] == seen[2] and len(set(seen)) == 3 and all(s.startswith(str(local.SHARED_CACHE)) for s in seen)
    volumes = [next(m["source"] for m in docker.container_spec(job, "img", cache="shared")["mounts"]
                    if m["type"] == "volume") for job in jobs]
    assert volumes[0] == volumes[2] and len(set(volumes)) == 3

    def on_node(node, gpus, script):
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SLURMD_NODENAME": node, "SLURM_JOB_GPUS": gpus}
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    body = script.direct_body(SimpleNamespace(env={}, argv=[]), tmp_path, "python3", "shared")
    direct = "\n".join(line for line in body if not line.endswith("&")) + '\necho "$VLLM_CACHE_ROOT"'
    roots = [on_node(n, g, direct) for n, g in (("n1", "0"), ("n1", "1"), ("n2", "0"), ("n1", "0"))]
    assert roots[0] == roots[3] and len(set(roots)) == 3 and roots[0].startswith(f"{tmp_path}/.cache/sleepkit/")
    cache_volume = next(m for m in docker.container_spec(jobs[0], "img", cache="shared")["mounts"]
                        if m["type"] == "volume")
    assert on_node("n1", "1", f"echo {script.volume(cache_volume)}") == f"{volumes[1]}:{common.COMPILE_CACHE_TARGET}\n"


def test_no_gpu_means_no_gpu_settings():
    assert gpu_access.settings("devices", []) == {"mode": "none", "device_requests": [], "devices": [],
                                                   "mounts": [], "environment": {}}


@pytest.mark.parametrize("info, host, requested, mode", [
    ({"Runtimes": {"runc": {}, "nvidia": {}}}, HOST, "auto", "toolkit"),
    ({"Runtimes": {"runc": {}}}, HOST, "auto", "devices"),
    ({"Runtimes": {"runc": {}}}, gpu_access.Host(hook=True), "auto", "toolkit"),
])
def test_auto_picks_the_first_mode_that_works(info, host, requested, mode):
    assert gpu_access.choose(requested, host, info)[0] == mode


def test_cdi_needs_a_spec_in_the_engines_cdi_folders(tmp_path):
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    info = {"Runtimes": {"runc": {}}, "CDISpecDirs": [str(tmp_path)], "ServerVersion": "27.3.1"}
    assert gpu_access.choose("auto", gpu_access.Host(), info)[0] == "cdi"
    assert "CDI needs Docker >= 25" in gpu_access.available("cdi", gpu_access.Host(), {"ServerVersion": "20.10.24"})


def test_no_mode_works_fails_with_every_reason():
    with pytest.raises(NotReady) as e:
        gpu_access.choose("auto", gpu_access.Host(), {"Runtimes": {"runc": {}}, "ServerVersion": "20.10.24"})
    line = e.value.line()
    assert "toolkit: no NVIDIA Container Toolkit" in line and "cdi: " in line and "devices: no /dev/nvidia" in line
    with pytest.raises(NotReady, match="devices: no /dev/nvidia"):
        gpu_access.choose("devices", gpu_access.Host(), {})
