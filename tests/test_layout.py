"""Run folders: run ids, picking a run past a damaged one, and resuming a kit 0.1 run (its manifest upgraded)."""
import json

import pytest

from conftest import ROOT
from kit import layout, manifest, runs
from kit.errors import BadInput, BadRecord, NotFound


def test_run_ids_and_picking_runs(tmp_path):
    for bad in ("../x", "a/b", "..", "", "-x"):
        with pytest.raises(BadInput):
            layout.check_run_id(bad)
    with pytest.raises(NotFound, match="no runs in"):
        runs.pick_run(tmp_path)
    for name, created in (("old", "2025-01-01T00:00:00Z"), ("new", "2025-02-01T00:00:00Z")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"run_id": name, "created": created}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text('{"run_id": "bro')          # truncated
    assert runs.pick_run(tmp_path).run_id == "new"                              # damage does not hide the others
    with pytest.raises(BadRecord, match="broken/manifest.json: not JSON"):
        manifest.read_dict(runs.pick_run(tmp_path, "broken"))


def test_resuming_a_kit_0_1_run_upgrades_its_manifest(tmp_path):
    from kit.run import open_resume
    ref = ROOT / "results" / "reference" / "h100-vllm0.24.0-twins"
    import shutil
    run = shutil.copytree(ref, tmp_path / ref.name)
    _, record, options = open_resume(tmp_path, ref.name, {}, ["kit", "run", "--resume", ref.name])
    assert options.runtime == "local" and options.cache == "shared" and options.tables == (1, 4, 5, 3, 2)
    written = record.to_dict()          # what the resume writes back
    assert written["schema"] == manifest.SCHEMA and record.schema == 1
    assert written["options"] == options.to_manifest() and written["jobs"] == [] and len(written["resumes"]) == 1
    assert written["units"] == ["l1", "nosleep", "l2", "l1-nowarm", "l1-fp8"]
    assert run.exists()
