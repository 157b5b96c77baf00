"""The arm sequences as data (steps per arm and protocol, the seed quirk of one script) and the plan: units,
jobs, longest first."""
from kit import plan
from kit.options import RunOptions
from kit.workload.steps import Step, steps, unit_name


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
