"""Every bad input of every command: one line on stderr naming what is wrong, exit 2, no traceback,
nothing written. In-process (kit.cli.main, the one place errors are translated)."""
import importlib.util
import json
import re
import shutil

import click
import pytest

from conftest import ROOT
from fabricate import fabricate_run
from kit.cli import main

GOOD_SERVER = "python3 tests/vllm_double.py"


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A good run, two damaged ones, a file that is not a tar and a cut bundle; made once, copied per test."""
    tmp = tmp_path_factory.mktemp("pristine")
    run_dir = fabricate_run(tmp / "results", (1,), run_id="good")
    fabricate_run(tmp / "results", (1,), run_id="broken-manifest")
    (tmp / "results" / "broken-manifest" / "manifest.json").write_text('{"run_id": "broken-man')
    bad = fabricate_run(tmp / "results", (1,), run_id="bad-events")
    events = bad / "l1" / "r1" / "events.jsonl"
    events.write_text(events.read_text() + "garbage, not JSON\n")
    (tmp / "junk.tar.gz").write_bytes(b"this is not a tar")
    bundle = tmp / "cut.tar.gz"
    shutil.make_archive(str(tmp / "whole"), "gztar", run_dir.parent, run_dir.name)
    data = (tmp / "whole.tar.gz").read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    sweeps = tmp / "sweeps" / "guide"           # a sweep run (its manifest is all --resume reads before it fails)
    sweeps.mkdir(parents=True)
    shutil.copy(ROOT / "results" / "reference" / "h100-vllm0.24.0-guide" / "manifest.json", sweeps)
    return tmp


@pytest.fixture
def results(pristine, tmp_path):
    """A private copy: a command that wrongly writes cannot change what the next case sees."""
    return shutil.copytree(pristine, tmp_path / "case") / "results"


LOCAL = ["--runtime", "local", "--server-cmd", GOOD_SERVER, "--results-dir", "{r}"]
SLURM = ["--runtime", "slurm", "--dry-run"]
# (argv, what the line must say) for every command; "{r}" is the results dir, "{tmp}" the folder above it
BAD_INPUTS = [
    (["run", "7"], "unknown table '7'"),
    (["run"], "which tables?"),
    (["run", "1", "--all"], "not both"),
    (["run", "1", "--arm", "l1"], "give tables or --arm, not both"),
    (["run", "1", "--repeat", "0"], "--repeat must be between 1 and 100"),
    (["run", "1", "--repeat", "1000000000000"], "--repeat must be between 1 and 100"),
    (["run", "1", "--ready-timeout", "-1"], "--ready-timeout must be a positive number"),
    (["run", "1", "--ready-timeout", "0"], "--ready-timeout must be a positive number"),
    (["run", "1", "--ready-timeout", "nan"], "--ready-timeout must be a positive number"),
    (["run", "1", "--call-timeout", "nan"], "--call-timeout must be a positive number"),
    (["run", "1", "--server-cmd", "python3 'unbalanced"], "--server-cmd cannot be parsed"),
    (["run", "1", "--server-cmd", "python3 'unbalanced", "--dry-run"], "--server-cmd cannot be parsed"),
    (["run", "1", "--model-a", "/nonexistent/model"], "--model-a /nonexistent/model: no such folder"),
    (["run", "1", "--gpus", "garbage"], "--gpus 'garbage': not a GPU list"),
    (["run", "1", "--runtime", "kubernetes"], "Invalid value for '--runtime'"),
    (["run", "1", "--runtime", "local", "--server-cmd", GOOD_SERVER, "--results-dir", "{r}", "--run-id", "../x"],
     "run id '../x' is not a run id"),
    (["run", "1", "--runtime", "local", "--server-cmd", GOOD_SERVER, "--results-dir", "{r}", "--run-id", "good"],
     "run 'good' exists"),
    (["run", "--resume", "nosuch", "--results-dir", "{r}"], "cannot resume 'nosuch': no such run"),
    (["run", "--resume", "good", "1", "--results-dir", "{r}"], "--resume finishes a run with its own tables"),
    (["run", "--resume", "broken-manifest", "--results-dir", "{r}"], "broken-manifest/manifest.json: not JSON"),
    (["run", "--resume", "broken-manifest", "--results-dir", "{r}", "--dry-run"], "manifest.json: not JSON"),
    (["table", "--results-dir", "/nonexistent/results"], "is not a readable folder"),
    (["table", "../good", "--results-dir", "{r}"], "is not a run id"),
    (["table", "nosuch", "--results-dir", "{r}"], "no run 'nosuch'"),
    (["table", "--results-dir", "{r}", "--table", "9"], "unknown table '9'"),
    (["table", "good", "--loads", "--results-dir", "{r}", "--table", "9"], "unknown table '9'"),
    (["table", "broken-manifest", "--results-dir", "{r}"], "not JSON"),
    (["table", "bad-events", "--results-dir", "{r}"], "events.jsonl:27: not JSON"),
    (["plot", "bad-events", "--results-dir", "{r}"], "events.jsonl:27: not JSON"),
    (["plot", "broken-manifest", "--results-dir", "{r}"], "not JSON"),
    (["bundle", "bad-events", "--results-dir", "{r}"], "events.jsonl:27: not JSON"),
    (["bundle", "broken-manifest", "--results-dir", "{r}"], "not JSON"),
    (["bundle", "a", "b", "--results-dir", "{r}"], "at most one RUN_ID"),
    (["bundle", "verify"], "takes one FILE"),
    (["bundle", "verify", "{tmp}/nosuch.tar.gz"], "no bundle file"),
    (["compare", "{tmp}/junk.tar.gz", "published"], "not a readable tar.gz"),
    (["compare", "{tmp}/cut.tar.gz", "published"], "not a readable tar.gz"),
    (["compare", "nosuch", "published", "--results-dir", "{r}"], "no run 'nosuch'"),
    (["compare", "good", "published:h100", "--results-dir", "{r}"], "published:h100: no such source"),
    (["compare", "good", "bad-events", "--results-dir", "{r}"], "events.jsonl:27: not JSON"),
    (["compare", "good", "published:a4000", "--table", "5", "--results-dir", "{r}"], "has no numbers for table(s) 5"),
    (["show", "broken-manifest", "--results-dir", "{r}"], "not JSON"),
    (["show", "nosuch", "--results-dir", "{r}"], "no run 'nosuch'"),
    (["doctor", "--gpus", "0,,1"], "not a GPU list"),
    (["build", "--vllm-version", "latest"], "--vllm-version must look like 0.11.0"),
    (["build", "--vllm-image", "vllm/vllm-openai:v0.11.0", "--vllm-version", "0.11.0"], "not both"),
    (["models", "twin", "qwen3-0.6b", "--out", "{r}"], "is not empty"),
    # issue 19: inputs that were accepted, or crashed with a traceback
    (["run", "1", "--run-id", "", "--dry-run"], "run id '' is not a run id"),
    (["run", "1", *LOCAL, "--run-id", ""], "run id '' is not a run id"),
    (["run", "1", *LOCAL, "--run-id", "x" * 101], "has 101 characters; use at most 100"),
    (["run", "1", *LOCAL, "--run-id", "x" * 300], "has 300 characters"),
    (["run", "1", *LOCAL, "--run-id", "a b"], "run id 'a b' is not a run id"),
    (["run", "1", *LOCAL, "--run-id", "a\nb"], "is not a run id"),
    (["run", "1", *LOCAL, "--model-a", ""], "--model-a is empty"),
    (["run", "1", *LOCAL, "--model-b", " "], "--model-b is empty"),
    (["run", "1", "--model-a", "", "--dry-run"], "--model-a is empty"),
    (["run", "1", *SLURM, "--slurm-time", "soon"], "--slurm-time (or KIT_SLURM_TIME) 'soon' is not a Slurm time limit"),
    (["run", "1", *SLURM, "--slurm-time", "1:00:00:00"], "is not a Slurm time limit"),
    (["run", "1", *SLURM, "--slurm-partition", "gpu\n#SBATCH --mem=1"], "is not a Slurm partition"),
    (["run", "1", *SLURM, "--slurm-partition", "gpu --mem=1"], "is not a Slurm partition"),
    (["run", "1", *SLURM, "--slurm-account", "a;b"], "is not a Slurm account"),
    (["run", "1", *SLURM, "--slurm-args", "'--mem=1\n#SBATCH --x=1'"], "holds a newline or control character"),
    (["run", "1", *SLURM, "--slurm-args", "--wrap=true"], "--slurm-args must not set --wrap=true"),
    (["run", "1", *SLURM, "--slurm-args=--output=/tmp/x"], "--slurm-args must not set --output=/tmp/x"),
    (["doctor", "--runtime", "slurm", "--slurm-args=--wrap=true"], "--slurm-args must not set --wrap=true"),
    (["doctor", "--runtime", "slurm", "--slurm-time", "soon"], "is not a Slurm time limit"),
    # kit sweep --resume RUN_ID --add-models: checked before the run is touched
    (["sweep", "--add-models", "Qwen/Qwen3-14B", "--results-dir", "{r}"],
     "--add-models adds models to a sweep run: give --resume RUN_ID too"),
    (["sweep", "--resume", "nosuch", "--add-models", "Qwen/Qwen3-14B", "--results-dir", "{r}"],
     "cannot resume 'nosuch': no such run"),
    (["sweep", "--resume", "good", "--add-models", "Qwen/Qwen3-14B", "--results-dir", "{r}"],
     "--add-models: run good is not a sweep"),
    (["sweep", "--resume", "guide", "--add-models", " , ", "--results-dir", "{tmp}/sweeps"],
     "--add-models: give at least one model"),
    (["sweep", "--resume", "guide", "--add-models", "Qwen/Qwen3-0.6B", "--results-dir", "{tmp}/sweeps"],
     "--add-models Qwen/Qwen3-0.6B collides with the run's model /root/sk/twins/qwen3-0.6b"),
    (["sweep", "--resume", "guide", "--add-models", "Qwen/Qwen3-0.6B", "--dry-run", "--results-dir", "{tmp}/sweeps"],
     "collides with the run's model /root/sk/twins/qwen3-0.6b"),
    (["sweep", "--resume", "guide", "--add-models", "a/Qwen3-Coder-30B,b/qwen3-coder-30b", "--results-dir", "{tmp}/sweeps"],
     "--add-models b/qwen3-coder-30b collides with a/Qwen3-Coder-30B: both would be named 'qwen3-coder-30b'"),
    (["sweep", "--models", ".", "--dry-run", "--results-dir", "{r}"],
     "--models '.': the model's units are named after its last path part, and this has no letter or digit (a-z, 0-9)"),
    (["sweep", "--models", "/models/通义千问", "--dry-run", "--results-dir", "{r}"],
     "--models '/models/通义千问': the model's units are named after its last path part, and this has no letter or digit"),
    (["sweep", "--models", "/models/" + "q" * 250, "--results-dir", "{r}"],     # a unit folder's name would be too long
     "the model's units are named after its last path part, and this has 250 characters (at most 100)"),
    (["sweep", "--resume", "guide", "--add-models", "~/", "--results-dir", "{tmp}/sweeps"],
     "--add-models '~/': the model's units are named after its last path part"),
    (["sweep", "--resume", "guide", "--add-models", "/nonexistent/qwen3-coder-30b", "--results-dir", "{tmp}/sweeps"],
     "--add-models /nonexistent/qwen3-coder-30b: no such folder"),
    (["sweep", "--resume", "guide", "--add-models", "Qwen/Qwen3-Coder-30B-A3B-Instruct", "--gpu-memory-gib", "nan",
      "--results-dir", "{tmp}/sweeps"], "--gpu-memory-gib must be a positive number"),
    (["sweep", "--resume", "guide", "--gpu-memory-gib", "40", "--results-dir", "{tmp}/sweeps"],
     "--gpu-memory-gib with --resume is for --add-models"),
    (["sweep", "--resume", "guide", "--levels", "2", "--results-dir", "{tmp}/sweeps"],
     "--resume finishes a sweep with its own models, levels and id"),
]


def case_id(argv):
    return " ".join(argv).replace("{r}", "R").replace("\n", "\\n")[:70]


@pytest.mark.parametrize("argv, message", [pytest.param(a, m, id=case_id(a)) for a, m in BAD_INPUTS])
def test_every_bad_input_is_one_line_and_exit_2(results, capsys, argv, message):
    argv = [a.format(r=results, tmp=results.parent) for a in argv]
    before = sorted(p.relative_to(results.parent) for p in results.parent.rglob("*"))
    code, out, err = run_main(capsys, *argv)
    assert code == 2, (code, out, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out, err
    assert sorted(p.relative_to(results.parent) for p in results.parent.rglob("*")) == before      # nothing written


def test_a_damaged_run_does_not_hide_the_others(results, capsys):
    code, out, _ = run_main(capsys, "table", "--results-dir", results, "--table", "1")
    assert code == 0 and "Table 1:" in out
    code, out, _ = run_main(capsys, "ls", "--results-dir", results)
    assert code == 0 and "broken-manifest" in out and "damaged" in out and "good" in out


def test_fresh_clone_falls_back_to_the_reference_runs_and_says_so(tmp_path, capsys):
    (tmp_path / "results" / "reference").mkdir(parents=True)
    code, _, err = run_main(capsys, "table", "--results-dir", tmp_path / "results")
    assert code == 2 and "no runs in" in err
    fabricate_run(tmp_path / "results" / "reference", (1,), run_id="ref")
    code, out, err = run_main(capsys, "table", "--results-dir", tmp_path / "results")
    assert code == 0 and out.startswith("Table 1") and "using the latest reference run" in err
    code, out, err = run_main(capsys, "ls", "--results-dir", tmp_path / "results")
    assert code == 0 and "ref" in out and "the committed reference runs in" in err


def test_results_dir_from_the_environment(results, capsys, monkeypatch):
    monkeypatch.setenv("KIT_RESULTS_DIR", str(results))
    code, out, _ = run_main(capsys, "ls")
    assert code == 0 and "good" in out
    code, out, _ = run_main(capsys, "show", "good")
    assert code == 0 and "run good: complete" in out


def test_table_views(results, capsys):
    code, out, _ = run_main(capsys, "table", "good", "--results-dir", results)
    assert code == 0 and out.startswith("Table 1: Sleep mode (L1) vs no sleep mode")
    assert max(len(line) for line in out.splitlines()) <= 80 and "\nIn short:\nTable 1: a level-1 wake" in out
    code, wide, _ = run_main(capsys, "table", "good", "--results-dir", results, "--wide")
    assert "min..max" in wide and "pub[2]" in wide
    code, js, _ = run_main(capsys, "table", "good", "--results-dir", results, "--format", "json")
    assert json.loads(js)["tables"][0]["table"] == 1


def command_paths(group, path=()):
    """Every command below the group, subcommands included ("models twin"), as the words that call it."""
    for name, command in sorted(group.commands.items()):
        yield " ".join(path + (name,))
        if isinstance(command, click.Group):
            yield from command_paths(command, path + (name,))


COMMANDS = list(command_paths(main.group))


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_every_command(capsys, command):
    code, out, _ = run_main(capsys, *command.split(), "--help")
    assert code == 0 and re.search(rf"^Usage: kit {command} .*?\n\n  \S", out, re.S), out     # usage, then what it does


def test_the_help_test_reaches_subcommands():
    assert "models" in COMMANDS and "models twin" in COMMANDS and len(COMMANDS) >= 15


def test_run_help_names_its_options(capsys):
    code, out, _ = run_main(capsys, "run", "--help")
    for option in ("--gpus", "--gpu-access", "--arm", "--resume", "--cache", "--protocol", "--runtime"):
        assert option in out


def test_the_cli_reference_is_current():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    assert reference.render() == reference.OUT.read_text(encoding="utf-8"), \
        "docs/cli.md is not what the commands' --help say: run `make docs` and commit docs/cli.md"
