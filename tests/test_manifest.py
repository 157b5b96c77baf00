"""kit/manifest.py: a new run's manifest reads back as it was written, kit 0.1.0's is migrated once, the
readers' check and `kit bundle verify`'s check differ as their table says, and adopt builds manifests
without kit.run."""
import json
import re
import shutil

import pytest

from conftest import ROOT
from kit import layout, manifest, plan
from kit.errors import BadRecord
from kit.options import RunOptions
from test_code import imports, module_name

OLD = ROOT / "results" / "reference" / "h100-vllm0.24.0-twins"            # kit 0.1.0: schema 1


def test_a_new_manifest_reads_back_as_it_was_written(tmp_path):
    options = RunOptions(tables=(1, 4), runtime="local")
    record = manifest.new("r1", options, plan.units(options), ["kit", "run", "1", "4"])
    run_dir = layout.RunDir(tmp_path / "r1")
    run_dir.path.mkdir()
    manifest.write(run_dir, record)
    written = json.loads(run_dir.manifest_path.read_text())
    assert written["schema"] == manifest.SCHEMA and written["options"] == options.to_manifest()
    assert {"kit_version", "git_commit", "command", "server_args", "stand_in"} <= set(written)
    back = manifest.read(run_dir)
    assert back == record and back.to_dict() == written
    assert back.units == [u.name for u in plan.units(options)] and back.stand_in is None


def test_kit_0_1_manifest_is_migrated_once(tmp_path):
    run_dir = layout.RunDir(shutil.copytree(OLD, tmp_path / OLD.name))
    raw = manifest.read_dict(run_dir)
    assert "schema" not in raw and "units" not in raw
    record = manifest.read(run_dir)
    assert record.schema == 1 and record.options.runtime == "local" and record.options.cache == "shared"
    assert record.units == ["l1", "nosleep", "l2", "l1-nowarm", "l1-fp8"] and record.jobs == []
    assert record.rest["arms"] == raw["arms"]                   # what this kit does not read is kept
    manifest.write(run_dir, record)
    again = manifest.read(run_dir)                              # now schema 2: nothing left to migrate
    assert again.schema == manifest.SCHEMA and again.options == record.options and again.units == record.units


@pytest.mark.parametrize("change, reads, verify", [
    (lambda m: m.pop("kit_version"), True, "manifest.json: missing key 'kit_version'"),
    (lambda m: m.update(created=None), True, "manifest.json: 'created' has the wrong type (NoneType)"),
    (lambda m: m.pop("units"), True, None),
    (lambda m: m.update(jobs={}), "'jobs' has the wrong type (dict)", None),
    (lambda m: m.update(options={"repeat": "2"}), True, "options do not read back ('repeat' is a str)"),
])
def test_readers_check_types_and_verify_requires_keys(change, reads, verify):
    """One table, two checks: a reader takes a manifest with keys missing (kit 0.1.0's, a run being
    written); `kit bundle verify` requires them."""
    data = json.loads((ROOT / "results" / "reference" / "h200-vllm0.24.0-twins-host" / "manifest.json").read_text())
    assert manifest.problems(manifest.parse(json.dumps(data), "manifest.json")) == (data, [])
    change(data)
    if reads is not True:
        with pytest.raises(BadRecord, match=re.escape(reads)):
            manifest.parse(json.dumps(data), "manifest.json")
        return
    parsed = manifest.parse(json.dumps(data), "manifest.json")
    found = manifest.problems(parsed)[1]
    assert (any(verify in p for p in found) if verify else found == [])


def test_adopt_builds_its_manifest_without_kit_run():
    path = ROOT / "kit" / "adopt.py"
    modules = {module_name(p) for p in (ROOT / "kit").rglob("*.py")}
    assert "kit.manifest" in imports(path, modules) and "kit.run" not in imports(path, modules)
