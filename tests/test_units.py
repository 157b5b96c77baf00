"""Unit tier: options, the arm sequences, the plan, the scheduler, GPU access specs, layout, the
container-side package's imports. In-process and fast."""
import ast
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from kit import layout, plan
from kit.errors import BadInput, BadRecord, NotFound, NotReady
from kit.gpus import Gpu
from kit.options import RunOptions, parse_gpus
from kit.runtimes import gpu_access
from kit.schedule import Scheduler
from kit.workload.options import ArmOptions
from kit.workload.steps import Step, steps, unit_name

ROOT = Path(__file__).resolve().parents[1]


# -- options ------------------------------------------------------------------------------------------
def test_arm_options_round_trip_through_argv():
    opts = ArmOptions(arm="l2", out="/x", run_id="r", repeat=2, script="online_sleep2_nosleep.py", model_a="/m/a",
                      server_cmd="python3 -c 'print(1)'", protocol="seed", fixed_output=True, ready_timeout=12.5,
                      measure_h2d=True)
    assert ArmOptions.parse(opts.to_argv()) == opts
    assert ArmOptions.parse(["--arm", "l1"]) == ArmOptions(arm="l1")
    assert "--fixed-output" not in ArmOptions(arm="l1").to_argv()


@pytest.mark.parametrize("argv", [["--arm", "l9"], ["--arm", "l1", "--ready-timeout", "nan"],
                                  ["--arm", "l1", "--call-timeout", "-1"], []])
def test_workload_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        ArmOptions.parse(argv)
    assert e.value.code == 2


def test_run_options_round_trip_through_the_manifest():
    opts = RunOptions(tables=(1, 4), repeat=3, runtime="local", cache="shared", gpus="0,1", fixed_output=True,
                      server_cmd="python3 x.py", ready_timeout=60.0, image="img:1", hf_cache="/hf")
    manifest = {"schema": layout.MANIFEST_SCHEMA, "options": json.loads(json.dumps(opts.to_manifest()))}
    assert RunOptions.from_manifest(manifest) == opts


def test_docs_list_every_option():
    doc = (ROOT / "docs" / "results-layout.md").read_text()
    for name in RunOptions.__dataclass_fields__:
        assert f"`{name}`" in doc, name


@pytest.mark.parametrize("change, message", [
    ({"repeat": 0}, "--repeat must be between 1 and 100"),
    ({"repeat": 10**9}, "--repeat must be between 1 and 100"),
    ({"ready_timeout": float("nan")}, "--ready-timeout must be a positive number"),
    ({"call_timeout": 0.0}, "--call-timeout must be a positive number"),
    ({"call_timeout": -3.0}, "--call-timeout must be a positive number"),
    ({"server_cmd": "python3 'unbalanced"}, "--server-cmd cannot be parsed"),
    ({"server_cmd": "  "}, "--server-cmd cannot be parsed"),
    ({"model_a": "/no/such/model"}, "--model-a /no/such/model: no such folder"),
    ({"model_b": "./missing-model"}, "--model-b ./missing-model: no such folder"),
    ({"model_a": "bad name!"}, "is neither a folder nor a hub name"),
    ({"gpus": "garbage"}, "--gpus 'garbage': not a GPU list"),
    ({"gpus": "0,0"}, "not a GPU list"),
    ({"runtime": "kubernetes"}, "--runtime 'kubernetes' is not one of"),
])
def test_bad_options_are_one_line(change, message):
    with pytest.raises(BadInput) as e:
        RunOptions(tables=(1,), **change).check()
    assert message in e.value.line() and "\n" not in e.value.line()


def test_gpu_lists():
    assert parse_gpus("all") == "all" and parse_gpus(" 0, 1 ") == ("0", "1")
    assert parse_gpus("GPU-0a1b2c3d-aaaa") == ("GPU-0a1b2c3d-aaaa",)


# -- the arm sequence as data ----------------------------------------------------------------------------
def test_the_sequences():
    l1 = steps("l1")
    assert l1[:6] == [Step("load", "A", 0), Step("warmup", "A", 0), Step("sleep", "A", 0),
                      Step("load", "B", 0), Step("warmup", "B", 0), Step("sleep", "B", 0)]
    assert l1[-3:] == [Step("prompt", "B", 3), Step("stop", "A", 3), Step("stop", "B", 3)]
    assert [s for s in steps("l1-nowarm") if s.kind == "warmup"] == []
    assert len(steps("nosleep")) == 18 and {s.kind for s in steps("nosleep")} == {"load", "prompt", "stop"}


def test_seed_quirk_belongs_to_one_script_only():
    table5 = steps("l2", "seed", "online_sleep2_nosleep.py")
    assert [(s.kind, s.model) for s in table5[:6]] == [("load", "A"), ("warmup", "A"), ("sleep", "A"),
                                                        ("load", "B"), ("warmup", "B"), ("sleep", "A")]
    assert steps("l2", "seed", "online_sleep1_2.py") == steps("l2")          # Table 4's script sleeps B
    assert steps("l2", "corrected", "online_sleep2_nosleep.py") == steps("l2")
    assert unit_name("l2", "seed", "online_sleep2_nosleep.py") == "l2@online_sleep2_nosleep"
    assert unit_name("l2", "seed", "online_sleep1_2.py") == "l2"
    assert unit_name("nosleep", "seed", "online_sleep2_nosleep.py") == "nosleep"


def test_plan_units_and_longest_first():
    opts = RunOptions(tables=(1, 2, 3, 4, 5), repeat=2)
    assert [u.name for u in plan.units(opts)] == ["l1", "nosleep", "l1-fp8", "l1-nowarm", "l2"]
    jobs = plan.jobs(opts)
    assert [j.key for j in jobs[:2]] == ["nosleep r1", "nosleep r2"]
    seconds = [plan.expected_seconds(j.unit)[0] for j in jobs]
    assert seconds == sorted(seconds, reverse=True) and len(jobs) == 10
    seed = RunOptions(tables=(4, 5), protocol="seed")
    assert [u.name for u in plan.units(seed)] == ["l1", "l2", "l2@online_sleep2_nosleep", "nosleep"]
    only = RunOptions(arms=("l2",))
    assert only.table_numbers() == [4, 5] and [u.name for u in plan.units(only)] == ["l2"]


# -- the scheduler ---------------------------------------------------------------------------------------
class Recorder:
    """run_job that records which lane ran what, when, and can hold jobs until released."""

    def __init__(self, seconds=0.05, fail=()):
        self.seconds, self.fail = seconds, set(fail)
        self.spans, self.lock = [], threading.Lock()

    def __call__(self, job, lane):
        t0 = time.monotonic()
        time.sleep(self.seconds)
        with self.lock:
            self.spans.append((lane, job, t0, time.monotonic()))
        if job in self.fail:
            raise RuntimeError(f"{job} crashed")
        return {"ok": True}


def test_jobs_run_in_order_never_two_on_a_lane():
    rec = Recorder()
    jobs = [f"j{i}" for i in range(7)]
    out = Scheduler(["gpu0", "gpu1", "gpu2"], rec).run(jobs)
    assert set(out) == set(jobs)
    starts = sorted(rec.spans, key=lambda s: s[2])
    assert [s[1] for s in starts][:3] == ["j0", "j1", "j2"]            # taken in the order given
    for lane in ("gpu0", "gpu1", "gpu2"):
        mine = sorted((a, b) for ln, _, a, b in rec.spans if ln == lane)
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(mine, mine[1:]))   # exclusive


def test_one_lane_runs_jobs_one_after_another():
    rec = Recorder(0.01)
    Scheduler(["only"], rec).run(["a", "b", "c"])
    assert [s[1] for s in rec.spans] == ["a", "b", "c"]


def test_a_busy_gpu_is_reported_and_its_jobs_go_elsewhere():
    rec, events = Recorder(), []
    busy = lambda lane: "GPU 1 has 2.0 of 80.0 GiB free" if lane == "gpu1" else None
    out = Scheduler(["gpu0", "gpu1"], rec, is_busy=busy, events=lambda *e: events.append(e)).run(["a", "b", "c"])
    assert set(out) == {"a", "b", "c"} and {s[0] for s in rec.spans} == {"gpu0"}
    assert ("retire", None, "gpu1", "GPU 1 has 2.0 of 80.0 GiB free") in events


def test_a_gpu_failing_mid_run_leaves_the_rest_to_the_others():
    rec, state = Recorder(), {"gpu1_jobs": 0}

    def busy(lane):
        return "NVML cannot read GPU 1" if lane == "gpu1" and state["gpu1_jobs"] >= 1 else None

    def run_job(job, lane):
        if lane == "gpu1":
            state["gpu1_jobs"] += 1
        return rec(job, lane)
    sched = Scheduler(["gpu0", "gpu1"], run_job, is_busy=busy, settle_s=0.2, poll_s=0.05)
    out = sched.run([f"j{i}" for i in range(6)])
    assert set(out) == {f"j{i}" for i in range(6)}
    assert sum(1 for s in rec.spans if s[0] == "gpu1") == 1 and sched.retired == {"gpu1": "NVML cannot read GPU 1"}


def test_every_lane_gone_leaves_jobs_not_run():
    sched = Scheduler(["gpu0"], Recorder(), is_busy=lambda lane: "busy")
    assert sched.run(["a", "b"]) == {} and sched.waiting() == ["a", "b"]


def test_a_crashing_job_is_its_own_result_and_the_lane_goes_on():
    out = Scheduler(["gpu0"], Recorder(0.01, fail={"b"})).run(["a", "b", "c"])
    assert isinstance(out["b"], RuntimeError) and out["a"] == out["c"] == {"ok": True}


def test_stop_takes_no_more_jobs():
    started = threading.Event()
    release = threading.Event()

    def run_job(job, lane):
        started.set()
        release.wait(5)
        return {"ok": True}
    sched = Scheduler(["gpu0"], run_job)
    runner = threading.Thread(target=sched.run, args=(["a", "b", "c"],))
    runner.start()
    assert started.wait(5)
    sched.stop()
    release.set()
    runner.join(5)
    assert list(sched.results) == ["a"]


# -- GPU access ------------------------------------------------------------------------------------------
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


# -- layout ----------------------------------------------------------------------------------------------
def test_run_ids_and_picking_runs(tmp_path):
    for bad in ("../x", "a/b", "..", "", "-x"):
        with pytest.raises(BadInput):
            layout.check_run_id(bad)
    with pytest.raises(NotFound, match="no runs in"):
        layout.pick_run(tmp_path)
    for name, created in (("old", "2025-01-01T00:00:00Z"), ("new", "2025-02-01T00:00:00Z")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"run_id": name, "created": created}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text('{"run_id": "bro')          # truncated
    assert layout.pick_run(tmp_path).run_id == "new"                              # damage does not hide the others
    with pytest.raises(BadRecord, match="broken/manifest.json: not JSON"):
        layout.pick_run(tmp_path, "broken").read_manifest()


# -- the container side ----------------------------------------------------------------------------------
def test_container_side_imports_only_stdlib_psutil_and_pynvml():
    allowed = set(sys.stdlib_module_names) | {"psutil", "pynvml", "kit"}
    for path in (ROOT / "kit" / "workload").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                assert top in allowed, f"{path.name} imports {name}"
                if top == "kit":
                    assert name.startswith("kit.workload") or name == "kit", f"{path.name} imports {name}"


def test_image_hash_covers_only_the_container_side(tmp_path):
    from kit import image
    files = [p.relative_to(ROOT).as_posix() for p in image.context_files(ROOT)]
    assert files[:2] == ["docker/Dockerfile", "kit/__init__.py"]
    assert all(f.startswith("kit/workload/") for f in files[2:]) and "kit/workload/runner.py" in files
    assert "kit/cli.py" not in files and "kit/results/render.py" not in files


def test_resuming_a_kit_0_1_run_upgrades_its_manifest(tmp_path):
    from kit.run import open_resume
    ref = ROOT / "results" / "reference" / "h100-vllm0.24.0-twins"
    import shutil
    run = shutil.copytree(ref, tmp_path / ref.name)
    _, manifest, options = open_resume(tmp_path, ref.name, {}, ["kit", "run", "--resume", ref.name])
    assert options.runtime == "local" and options.cache == "shared" and options.tables == (1, 4, 5, 3, 2)
    assert manifest["options"] == options.to_manifest() and manifest["jobs"] == [] and len(manifest["resumes"]) == 1
    assert manifest["units"] == ["l1", "nosleep", "l2", "l1-nowarm", "l1-fp8"]
    assert run.exists()


def test_live_lines_show_lane_job_step_elapsed_and_eta():
    import io
    from types import SimpleNamespace
    from kit.progress import Progress
    job, lane = SimpleNamespace(key="l1 r1"), SimpleNamespace(label="gpu 0")
    other = SimpleNamespace(key="nosleep r1")
    out = io.StringIO()
    progress = Progress(expected=lambda j: (600.0, "published"), tty=False, out=out)
    progress.plan([job, other])
    progress.started(job, lane)
    progress.line(job, lane, "start load A round 0")
    live = progress._render().plain
    assert "[gpu 0] l1 r1: load A round 0" in live and "ETA ~9:5" in live and "from published" in live
    assert "waiting: nosleep r1" in live
    progress.line(job, lane, "done  load A round 0 61.234 s ok")
    progress.ended(job, lane, {"ok": False, "exit_code": 1, "seconds": 70, "error": "server B died"}, "log tail")
    text = out.getvalue()
    assert "[gpu 0] l1 r1: started (expected 10:00 from published)" in text
    assert "[gpu 0] l1 r1: done  load A round 0 61.234 s ok" in text
    assert text.count("FAILED") == 1 and "server B died" in text and "log tail" in text
    assert "[gpu 0]" not in progress._render().plain                  # the finished job left the live lines
