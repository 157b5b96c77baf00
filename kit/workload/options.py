"""What one arm repeat needs to run: a frozen dataclass that is also the workload's command line.

The host builds ArmOptions from the run's options and turns them into argv (to_argv); the workload,
in a container or on the host, parses the same argv back (parse). One definition, no defaults elsewhere.
Container side: standard library only.
"""
import argparse
import math
from dataclasses import MISSING, dataclass, field, fields

from kit.workload import scenarios

DEFAULT_SERVER_CMD = "python3 -m vllm.entrypoints.openai.api_server"
PROTOCOLS = ("corrected", "seed")
MAX_TIMEOUT_S = 86400.0   # one day: longer is a typo, and the OS cannot wait that long on a socket anyway


def _opt(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class ArmOptions:
    arm: str = field(metadata={"help": "the arm to run", "choices": tuple(scenarios.ALL_ARMS)})
    out: str = _opt("", "folder for events.jsonl, env.json and the server logs")
    run_id: str = _opt("adhoc", "the run this arm repeat belongs to (written into every event)")
    repeat: int = _opt(1, "repeat index (1-based)")
    unit: str = _opt("", "the unit (folder) this repeat belongs to, written as the events' arm (default: the "
                         "arm, or its seed variant); kit sweep names one per model and level")
    script: str = _opt("", "seed protocol: the original script whose sequence to replay",
                       choices=("",) + tuple(t.script for t in scenarios.TABLES.values()))
    model_a: str = _opt(scenarios.MODEL_A, "model A: hub name or local folder")
    model_b: str = _opt(scenarios.MODEL_B, "model B: hub name or local folder")
    server_cmd: str = _opt(DEFAULT_SERVER_CMD, "server command; --model/--host/--port and the study's "
                                               "arguments are appended")
    protocol: str = _opt("corrected", "corrected, or seed (replay the original scripts' requests)",
                         choices=PROTOCOLS)
    fixed_output: bool = _opt(False, "send ignore_eos so every prompt yields exactly max_tokens")
    max_tokens: int = _opt(scenarios.MAX_TOKENS, "output tokens per prompt")
    ready_timeout: float = _opt(900.0, "seconds a server may take to start")
    call_timeout: float = _opt(300.0, "seconds one HTTP call may take")
    measure_h2d: bool = _opt(False, "measure the pinned host->GPU bandwidth first (torch)")
    stop_on_stdin_eof: bool = _opt(False, "stop, as on SIGTERM, when standard input closes (the Docker runtime "
                                           "holds a container's stdin, so its workload stops when kit run dies)")
    cold_cache: bool = _opt(False, "give every server start empty compile caches (--cache cold)")
    prime: bool = _opt(False, "first start and stop each model's server once, untimed, so the measured "
                              "loads find the compile cache warm (--cache warm); written to priming.jsonl")

    def __post_init__(self):
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self):
        """What is wrong with these options, or None."""
        if self.arm not in scenarios.ALL_ARMS:
            return f"unknown arm {self.arm!r} (one of {', '.join(scenarios.ALL_ARMS)})"
        for name in ("ready_timeout", "call_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
                return (f"{name.replace('_', '-')} must be a positive number of seconds, at most "
                        f"{MAX_TIMEOUT_S:.0f} (one day) (got {value!r})")
        if self.repeat < 1 or self.max_tokens < 1:
            return "repeat and max-tokens must be at least 1"
        if self.protocol not in PROTOCOLS:
            return f"unknown protocol {self.protocol!r}"
        return None

    def to_argv(self):
        argv = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.type is bool:
                argv += [flag] if value else []
            elif f.default is MISSING or value != f.default:
                argv += [flag, str(value)]
        return argv

    @classmethod
    def parse(cls, argv):
        """argv -> ArmOptions; bad usage exits 2 with argparse's message."""
        p = argparse.ArgumentParser(prog="python3 -m kit.workload",
                                    description="Run one arm of the vLLM Sleep Mode study; write events.jsonl.")
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if f.type is bool:
                p.add_argument(flag, action="store_true", help=f.metadata["help"])
            else:
                p.add_argument(flag, type=f.type, help=f.metadata["help"],
                               required=f.default is MISSING, default=None if f.default is MISSING else f.default,
                               choices=f.metadata.get("choices"))
        ns = p.parse_args(argv)
        try:
            return cls(**vars(ns))
        except ValueError as e:
            p.error(str(e))


def defaults():
    """{field: default} of every option that has one (the CLI takes its defaults from here)."""
    return {f.name: f.default for f in fields(ArmOptions) if f.default is not MISSING}
