"""What a run does: its units (an arm, or a seed-protocol variant of one) and its jobs (unit x repeat),
longest first so a run on several GPUs ends soonest.
"""
from dataclasses import dataclass

from kit import sweep
from kit.gpus import FREE_FRACTION
from kit.results import published
from kit.workload import scenarios
from kit.workload.steps import quirk, unit_name


@dataclass(frozen=True)
class Unit:
    name: str          # the folder and the events' `arm`: "l2", or "l2@online_sleep2_nosleep"
    arm: str
    script: str        # "" unless a seed-protocol sequence quirk of this script applies
    tables: tuple      # the tables this unit serves
    model: str = ""    # kit sweep: the one model its server runs (as model A); "" = the run's models A and B


@dataclass(frozen=True)
class Job:
    unit: Unit
    repeat: int

    @property
    def key(self):
        return f"{self.unit.name} r{self.repeat}"


def units(options):
    """The units of a run, in the order the tables (or --arm) name them."""
    found = {}
    if options.sweep_models:
        return [Unit(sweep.unit_name(m, level), sweep.arm_for(level), "", (), m)
                for m in options.sweep_models for level in options.sweep_levels]
    if options.arms:
        for arm in dict.fromkeys(options.arms):
            found[arm] = Unit(arm, arm, "", tuple(n for n in options.table_numbers() if arm in scenarios.TABLES[n].arms))
        return list(found.values())
    for n in options.tables:
        t = scenarios.TABLES[n]
        for arm in t.arms:
            name = unit_name(arm, options.protocol, t.script)
            script = t.script if quirk(arm, options.protocol, t.script) else ""
            old = found.get(name)
            found[name] = Unit(name, arm, script, (old.tables if old else ()) + (n,))
    return list(found.values())


def expected_seconds(unit, previous=None):
    """How long a job of this unit should take: its previous repeat in this run, else the published numbers."""
    if previous and previous.get(unit.name):
        return previous[unit.name], "previous repeat"
    seconds = published.expected_seconds(unit.arm)
    return seconds, "published" if seconds else None


def jobs(options):
    """Every (unit, repeat) of the run, longest expected first (the no-sleep arm is the longest)."""
    listed = [Job(u, k) for u in units(options) for k in range(1, options.repeat + 1)]
    return sorted(listed, key=lambda j: (-(expected_seconds(j.unit)[0] or 0), j.repeat))


def gpu_share(units):
    """The share of a GPU's memory that must be free for any of these units to start there (the most any of their
    arms needs: kit.workload.scenarios.Arm.gpu_share); the study's default when there are none."""
    return max((scenarios.ALL_ARMS[u.arm].gpu_share() for u in units), default=FREE_FRACTION)
