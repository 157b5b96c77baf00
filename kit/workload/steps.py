"""The sequence of an arm as data: which step, on which model, in which round.

    steps(arm, protocol, script) -> [Step]   the workload executes it; test fabricators write it

Sleep arm:  load A, warm-up A, sleep A, load B, warm-up B, sleep B, then 3 rounds of
            {wake A, prompt A, sleep A, wake B, prompt B, sleep B} without the very last sleep, stop A, stop B.
No-sleep:   3 rounds of {load A, prompt A, stop A, load B, prompt B, stop B}.
Sweep arm:  load A, warm-up A, 3 rounds of {sleep A, wake A, prompt A}, stop A (kit sweep: one model, "A").

`--protocol seed` replays the original scripts. Most of their defects are in how a request is made
(kit/workload/runner.py: JSON-body sleep level, 5 s readiness polling, prefix-cache reset inside the
prompt time); one is in the sequence and belongs to one script only: online_sleep2_nosleep.py (Table 5)
puts model A to sleep twice before round 1 and never model B (docs/seed-scripts.md). An arm whose seed
sequence differs from its plain one runs as a unit of its own, named `<arm>@<script stem>`.
Container side: standard library only.
"""
from dataclasses import dataclass

from kit.workload import scenarios

SCRIPT_QUIRKS = {
    # script -> {arm level: sequence change}; see docs/seed-scripts.md
    "online_sleep2_nosleep.py": {2: "sleep A twice, B never, before round 1"},
}


@dataclass(frozen=True)
class Step:
    kind: str      # load | warmup | sleep | wake | prompt | stop
    model: str     # "A" | "B"
    round: int     # 0 = set-up, 1..3 = switching rounds


def steps(arm, protocol="corrected", script=""):
    """The steps of an arm (scenarios.Arm or its name) under a protocol, for one original script."""
    arm = scenarios.ALL_ARMS[arm] if isinstance(arm, str) else arm
    if arm.sweep:
        return sweep_steps(arm)
    if arm.sleep_level is None:
        return [Step(kind, m, r) for r in range(1, scenarios.ROUNDS + 1) for m in "AB"
                for kind in ("load", "prompt", "stop")]
    setup = []
    for m in "AB":
        setup += [Step("load", m, 0)] + ([Step("warmup", m, 0)] if arm.warmup else []) + [Step("sleep", m, 0)]
    if quirk(arm, protocol, script):
        setup[-1] = Step("sleep", "A", 0)
    rounds = []
    for r in range(1, scenarios.ROUNDS + 1):
        for m in "AB":
            last = r == scenarios.ROUNDS and m == "B"
            rounds += [Step("wake", m, r), Step("prompt", m, r)] + ([] if last else [Step("sleep", m, r)])
    return setup + rounds + [Step("stop", "A", scenarios.ROUNDS), Step("stop", "B", scenarios.ROUNDS)]


def sweep_steps(arm):
    """One model's server: every cycle measures a sleep, the wake after it and the first prompt after the wake."""
    cycles = [Step(kind, "A", r) for r in range(1, scenarios.ROUNDS + 1) for kind in ("sleep", "wake", "prompt")]
    return ([Step("load", "A", 0)] + ([Step("warmup", "A", 0)] if arm.warmup else []) + cycles
            + [Step("stop", "A", scenarios.ROUNDS)])


def quirk(arm, protocol, script):
    """The sequence quirk the seed protocol replays for this arm and script, or None."""
    arm = scenarios.ALL_ARMS[arm] if isinstance(arm, str) else arm
    if protocol != "seed":
        return None
    return SCRIPT_QUIRKS.get(script, {}).get(arm.sleep_level)


def unit_name(arm, protocol="corrected", script=""):
    """The folder (and event `arm`) of an arm run: the arm, or `<arm>@<script stem>` for a seed variant."""
    name = arm if isinstance(arm, str) else arm.name
    return f"{name}@{script.removesuffix('.py')}" if quirk(arm, protocol, script) else name


def base_arm(unit):
    """'l2@online_sleep2_nosleep' -> 'l2'."""
    return unit.split("@", 1)[0]
