"""`kit adopt`: arm folders written without `kit run` (compose.yaml, or `python3 -m kit.workload` by hand)
become a run that `kit table`, `kit plot` and `kit bundle` read. In-process through kit.cli.main, no Docker."""
import json
import tarfile
from pathlib import PurePosixPath

import pytest

from fabricate import write_repeat
from kit import layout, plot, results
from kit.cli import main
from kit.manifest import SCHEMA
from kit.workload import scenarios

START = "=== sleepkit: starting server {m}: python3 -m vllm.entrypoints.openai.api_server --model {name} " \
        "--host 127.0.0.1 --port 41234 --gpu-memory-utilization 0.3\n"


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def compose_run(results_dir, arms, run_id="compose", logged=True, **repeat_options):
    """What `docker compose run --rm <arm>` leaves: <run-id>/<arm>/r1/ with no status.json and no manifest."""
    run_dir = results_dir / run_id
    for arm in arms:
        write_repeat(run_dir, run_id, arm, 1, status=False, **repeat_options.get(arm, {}))
        for m, name in (("A", scenarios.MODEL_A), ("B", scenarios.MODEL_B)):
            log = run_dir / arm / "r1" / layout.server_log(m)
            log.write_text((START.format(m=m, name=name) if logged else "") + log.read_text())
    return run_dir


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_compose_results_become_a_run_the_kit_reads(tmp_path, capsys):
    res = tmp_path / "results"
    run_dir = compose_run(res, ["l1", "nosleep", "l2"])
    code, out, err = run_main(capsys, "adopt", run_dir)
    assert code == 0, err
    assert "adopted" in out and "tables 1, 4, 5" in out and f"kit table compose --results-dir {res}" in out

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["schema"] == SCHEMA and manifest["adopted"] is True and manifest["adopted_at"]
    assert manifest["runtime"] == {"name": "compose"} and manifest["complete"] is True
    assert manifest["options"]["runtime"] == "compose" and manifest["options"]["tables"] == [1, 4, 5]
    assert manifest["models"]["A"]["name"] == scenarios.MODEL_A and manifest["models"]["B"]["name"] == scenarios.MODEL_B
    assert manifest["environment"]["vllm_version"] == "0.11.0" and manifest["h2d"] == {"compose": 25.0}
    assert manifest["command"] == ["kit", "adopt", str(run_dir)]
    assert sorted((j["unit"], j["repeat"], j["ok"]) for j in manifest["jobs"]) == \
        [("l1", 1, True), ("l2", 1, True), ("nosleep", 1, True)]
    for arm in ("l1", "nosleep", "l2"):
        status = json.loads((run_dir / arm / "r1" / "status.json").read_text())
        total = [e for e in map(json.loads, (run_dir / arm / "r1" / "events.jsonl").read_text().splitlines())
                 if e["kind"] == "total"][0]
        assert status["ok"] is True and status["error"] is None and status["seconds"] == round(total["duration_s"], 3)

    run = results.load_run(run_dir)
    assert run.tables == [1, 4, 5] and all(r.ok for reps in run.units.values() for r in reps)
    table = results.build_table(run, 1)
    assert table is not None
    code, out, err = run_main(capsys, "table", "compose", "--results-dir", res)
    assert code == 0 and out.startswith("Table 1:"), err
    code, out, err = run_main(capsys, "show", "compose", "--results-dir", res)
    assert code == 0 and "runtime compose" in out, err
    code, out, err = run_main(capsys, "bundle", "compose", "--results-dir", res, "--no-figures")  # drawn: render tier
    assert code == 0, err
    assert_verifies(capsys, out.strip().splitlines()[-1])


def assert_verifies(capsys, bundle):
    code, out, err = run_main(capsys, "bundle", "verify", bundle)
    assert code == 0 and out.strip().endswith(": ok"), out + err


@pytest.mark.render
def test_an_adopted_run_is_bundled_with_its_figures(tmp_path, capsys):
    res = tmp_path / "results"
    run_dir = compose_run(res, ["l1", "nosleep", "l2"])
    assert run_main(capsys, "adopt", run_dir)[0] == 0
    code, out, err = run_main(capsys, "bundle", "compose", "--results-dir", res)
    assert code == 0, err
    bundle = out.strip().splitlines()[-1]
    with tarfile.open(bundle, "r:gz") as tar:
        figures = {PurePosixPath(m.name).name for m in tar if PurePosixPath(m.name).parent.name == layout.FIGURES}
    assert figures == {*plot.expected_figures(results.load_run(run_dir), [1, 4, 5]), plot.INDEX}, figures
    assert_verifies(capsys, bundle)


def test_a_failed_or_stopped_arm_is_adopted_as_failed(tmp_path, capsys):
    run_dir = compose_run(tmp_path / "results", ["l1", "nosleep"], nosleep={"fail_at": 3})
    (run_dir / "l1" / "r2").mkdir()
    (run_dir / "l1" / "r2" / "events.jsonl").write_text("")        # killed before its first event
    code, out, err = run_main(capsys, "adopt", run_dir)
    assert code == 0 and "3 repeat(s), 2 failed" in out, err
    status = json.loads((run_dir / "nosleep" / "r1" / "status.json").read_text())
    assert status["ok"] is False and status["error"] == "fabricated failure" and status["exit_code"] == 1
    stopped = json.loads((run_dir / "l1" / "r2" / "status.json").read_text())
    assert stopped["ok"] is False and "no total event" in stopped["error"] and stopped["seconds"] == 0
    run = results.load_run(run_dir)
    assert run.options.repeat == 2 and not run.units["nosleep"][0].ok and run.units["l1"][0].ok
    code, out, err = run_main(capsys, "table", "compose", "--results-dir", tmp_path / "results")
    assert code == 0 and "Table 1:" in out, err


@pytest.mark.parametrize("arms, given, tables", [
    (["l1", "nosleep"], [], [1]),
    (["l1", "l1-fp8"], [], [2]),
    (["l1", "l1-nowarm", "l2"], [], [3, 4]),
    (list(scenarios.ARMS), [], [1, 2, 3, 4, 5]),
    (list(scenarios.ARMS), ["--tables", "4,1"], [4, 1]),
    (["l1"], ["--tables", "1"], [1]),
])
def test_tables_are_those_whose_two_arms_are_there(tmp_path, capsys, arms, given, tables):
    run_dir = compose_run(tmp_path / "results", arms, run_id="mine")
    code, _, err = run_main(capsys, "adopt", run_dir, *given)
    assert code == 0, err
    assert json.loads((run_dir / "manifest.json").read_text())["options"]["tables"] == tables


def test_models_from_the_options_when_the_logs_do_not_say(tmp_path, capsys):
    run_dir = compose_run(tmp_path / "results", ["l1", "nosleep"], logged=False)
    code, _, err = run_main(capsys, "adopt", run_dir, "--model-a", "org/a", "--model-b", "org/b")
    assert code == 0, err
    models = json.loads((run_dir / "manifest.json").read_text())["models"]
    assert (models["A"]["name"], models["B"]["name"]) == ("org/a", "org/b")


def refusals(res):
    """(run folder, extra arguments, what the one line must say)."""
    cases = []
    done = compose_run(res, ["l1", "nosleep"], run_id="done")
    assert main(["adopt", str(done)]) == 0
    cases.append((done, [], "has a manifest.json: it is a run already"))
    renamed = compose_run(res, ["l1", "nosleep"], run_id="compose")
    renamed = renamed.rename(res / "renamed")
    cases.append((renamed, [], "events of run 'compose', not 'renamed'"))
    bad = compose_run(res, ["l1", "nosleep"], run_id="bad")
    with open(bad / "nosleep" / "r1" / "events.jsonl", "a") as f:
        f.write("garbage, not JSON\n")
    cases.append((bad, [], "nosleep/r1/events.jsonl:20: not JSON"))
    twice = compose_run(res, ["l1", "nosleep"], run_id="twice")
    events = twice / "l1" / "r1" / "events.jsonl"
    events.write_text(events.read_text() * 2)
    cases.append((twice, [], "more than one run of the arm"))
    moved = compose_run(res, ["l1", "nosleep"], run_id="moved")
    (moved / "nosleep").rename(moved / "l2")
    cases.append((moved, [], "events of nosleep r1, not l2 r1"))
    lone = compose_run(res, ["l1"], run_id="lone")
    cases.append((lone, [], "no table has both its arms"))
    quiet = compose_run(res, ["l1", "nosleep"], run_id="quiet", logged=False)
    cases.append((quiet, [], "name it with --model-a"))
    cases.append((quiet, ["--tables", "9"], "unknown table '9'"))
    empty = res / "empty"
    empty.mkdir()
    cases.append((empty, [], "no <arm>/r<k>/ folders"))
    cases.append((res / "nosuch", [], "is not a folder"))
    return cases


def test_refusals_are_one_line_exit_2_and_write_nothing(tmp_path, capsys):
    res = tmp_path / "results"
    cases = refusals(res)
    capsys.readouterr()
    before = files(res)
    for run_dir, extra, message in cases:
        code, out, err = run_main(capsys, "adopt", run_dir, *extra)
        assert code == 2, (run_dir, out, err)
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (run_dir, err)
    assert files(res) == before


def test_kit_run_still_refuses_the_compose_runtime(capsys):
    code, _, err = run_main(capsys, "run", "1", "--runtime", "compose", "--dry-run")
    assert code == 2 and "'compose' is not one of" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_main(capsys, "adopt", "--help")
    assert code == 0 and "Usage: kit adopt" in out and "--tables" in out


def test_an_adopted_run_is_not_resumed_by_kit_run(tmp_path, capsys):
    res = tmp_path / "results"
    run_dir = compose_run(res, ["l1", "nosleep"])
    assert run_main(capsys, "adopt", run_dir)[0] == 0
    code, _, err = run_main(capsys, "run", "--resume", "compose", "--results-dir", res)
    assert code == 2 and "was adopted from docker compose" in err and len(err.strip().splitlines()) == 1
