"""Options: the workload's argv and the run's manifest round trips, the checks of bad values (one line each),
GPU lists, and the results-layout doc naming every option."""
import json

import pytest

from conftest import ROOT
from kit.errors import BadInput
from kit.options import RunOptions, parse_gpus
from kit.workload.options import ArmOptions


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
    assert RunOptions.from_stored(json.loads(json.dumps(opts.to_manifest()))) == opts


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
