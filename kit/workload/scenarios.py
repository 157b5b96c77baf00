"""The study as data: arms, tables, server arguments and prompts (the five comparisons of docs/seed-scripts.md)."""
from dataclasses import dataclass

MODEL_A = "Qwen/Qwen3-0.6B"
MODEL_B = "microsoft/Phi-3-vision-128k-instruct"

# The study's server arguments (every arm); the kit adds --model/--host/--port itself.
SERVER_ARGS = [
    "--gpu-memory-utilization", "0.3",
    "--max-model-len", "2048",
    "--max-num-seqs", "2",
    "--no-enable-prefix-caching",
    "--compilation-config", '{"cudagraph_mode": "FULL_AND_PIECEWISE"}',
    "--trust-remote-code",
    "--tensor-parallel-size", "1",
]
SERVER_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
# `kit sweep` starts one server at a time, so it may take most of the GPU (the study's 0.3 lets two share
# one): the larger models of a sweep need it. Only this argument differs from the study's.
SWEEP_GPU_MEMORY_UTILIZATION = "0.9"
SWEEP_SERVER_ARGS = [SWEEP_GPU_MEMORY_UTILIZATION if SERVER_ARGS[i - 1] == "--gpu-memory-utilization" else a
                     for i, a in enumerate(SERVER_ARGS)]

SYSTEM_PROMPT = "You are a helpful assistant."
# The original scripts' three questions, one per round.
PROMPTS = [
    "Can you explain why the sky is blue?",
    "Which is bigger? 9.9 or 9.11?",
    "Generate 5 horror stories consisting of 3 words only.",
]
WARMUP_PROMPT = "warmup"
MAX_TOKENS = 100
ROUNDS = 3


@dataclass(frozen=True)
class Arm:
    name: str
    sleep_level: int | None   # None: no sleep mode, a full restart per switch
    warmup: bool
    quantization: str | None
    title: str
    sweep: bool = False       # a sweep arm: one model's server alone (kit sweep), SWEEP_SERVER_ARGS

    def server_args(self):
        args = list(SWEEP_SERVER_ARGS if self.sweep else SERVER_ARGS)
        if self.sleep_level:
            args.append("--enable-sleep-mode")
        if self.quantization:
            args += ["--quantization", self.quantization]
        return args

    def gpu_share(self):
        """The share of a GPU's memory that must be free to start this arm: vLLM refuses a server when less
        than its --gpu-memory-utilization is free. A sleep arm holds models A and B at once; a no-sleep arm
        (restart per switch) and a sweep arm hold one server at a time."""
        args = self.server_args()
        one = float(args[args.index("--gpu-memory-utilization") + 1])
        return one if self.sweep or self.sleep_level is None else 2 * one

    def compile_key(self):
        """Arms with equal keys start the same server configuration, so they share compiled graphs: the
        server arguments, all of which may enter vLLM's compile-cache key (docs/vllm-versions.md)."""
        return " ".join(self.server_args())


ARMS = {a.name: a for a in [
    Arm("l1", 1, True, None, "Sleep L1 (bf16, warm-up)"),
    Arm("nosleep", None, False, None, "No sleep (restart per switch)"),
    Arm("l1-fp8", 1, True, "fp8", "Sleep L1 (fp8, warm-up)"),
    Arm("l1-nowarm", 1, False, None, "Sleep L1 (no warm-up)"),
    Arm("l2", 2, True, None, "Sleep L2 (wake + reload weights)"),
]}
# kit sweep's arms: one model, load -> warm-up -> 3 x {sleep, wake (as l1's or l2's), prompt} (steps.py)
SWEEP_ARMS = {a.name: a for a in [
    Arm("sweep-l1", 1, True, None, "Sweep: sleep L1", sweep=True),
    Arm("sweep-l2", 2, True, None, "Sweep: sleep L2 (wake + reload weights)", sweep=True),
]}
ALL_ARMS = {**ARMS, **SWEEP_ARMS}


@dataclass(frozen=True)
class Table:
    number: int
    arms: tuple      # (test arm, control arm)
    title: str
    script: str      # the original script this table replaces


TABLES = {t.number: t for t in [
    Table(1, ("l1", "nosleep"), "Sleep mode (L1) vs no sleep mode", "online_default.py"),
    Table(2, ("l1", "l1-fp8"), "Sleep mode L1: bf16 vs fp8", "online_fp8.py"),
    Table(3, ("l1", "l1-nowarm"), "Sleep mode L1: warm-up vs no warm-up", "online_sleep1_nowarm.py"),
    Table(4, ("l1", "l2"), "Sleep level 1 vs level 2 (wake + reload weights)", "online_sleep1_2.py"),
    Table(5, ("l2", "nosleep"), "Sleep level 2 (wake + reload weights) vs no sleep mode", "online_sleep2_nosleep.py"),
]}


def arms_for(tables):
    """The arms the given tables need, each once, in the order the tables were asked for."""
    order = []
    for n in tables:
        for arm in TABLES[n].arms:
            if arm not in order:
                order.append(arm)
    return order
