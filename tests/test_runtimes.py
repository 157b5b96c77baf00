"""The runtime contract: kit run and kit doctor use a runtime through it only, and the runtime docs/runtimes.md
sketches plugs in with its registry entry alone."""
import ast
import re

import kit.options
from conftest import ROOT
from kit import doctor, run, runtimes
from kit.options import RunOptions

NAMES = set(runtimes.REGISTRY) | set(kit.options.ADOPTED)


def test_run_and_doctor_name_no_runtime():
    for module in ("run.py", "doctor.py"):
        tree = ast.parse((ROOT / "kit" / module).read_text())
        named = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
                 for c in [node.left, *node.comparators] if isinstance(c, ast.Constant) and c.value in NAMES]
        asked = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", None) == "hasattr"]
        assert not named and not asked, (module, named, asked)


def sketch():
    """The runtime class of docs/runtimes.md's first Python block."""
    block = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "runtimes.md").read_text(), re.S)[1]
    space = {}
    exec(compile(block, "docs/runtimes.md", "exec"), space)
    return space["SshRuntime"]


def test_the_documented_sketch_plugs_in_with_its_registry_entry(monkeypatch, tmp_path):
    cls = sketch()
    monkeypatch.setitem(runtimes.REGISTRY, cls.name, cls)
    monkeypatch.setattr(kit.options, "RUNTIMES", kit.options.RUNTIMES + (cls.name,))   # --runtime's choices, at import
    options = RunOptions(tables=(1,), runtime=cls.name, gpus="none", server_cmd="python3 tests/vllm_double.py")
    lines = run.dry_run(options, tmp_path / "results")
    assert "runtime ssh; protocol corrected; cache warm; lanes: host" in lines[1] and lines[-1] == "dry run: nothing started"
    assert not any("batch script" in line for line in lines)
    checks = doctor.run_checks(options, tmp_path / "results", env={})
    assert [c.name for c in checks] == ["gpus", "models", "results dir"]
    assert runtimes.get_runtime(options).describe() == {"name": "ssh", "host": "gpu-box", "cache": "warm"}
