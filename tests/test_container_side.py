"""The container side (kit/workload): what it may import, and that the image hash covers only it."""
import ast
import sys

from conftest import ROOT


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
