"""What one server load was made of, read from the server's own log (vLLM 0.11.0's and 0.24.0's wording).

The workload appends every start of a model's server to the same server-<model>.log; each start begins
with the line `=== sleepkit: starting server <label>: <command>` (engine.Server.start). `segments(text)`
splits a log into starts, `breakdown(segment)` reads one start. docs/vllm-versions.md ("Loads and the
compile cache") names the source line of every pattern. Container side: standard library only.
"""
import re

HEADER = "=== sleepkit: starting server "

# Server arguments that enter vLLM's compile-cache key (the hash folder under torch_compile_cache/):
# VllmConfig.compute_hash, 0.24.0 config/vllm.py:386 (and each config's compute_hash it calls),
# 0.11.0 config/__init__.py:149. Besides these: the vLLM version, torch/Inductor (the compiler hash),
# the traced source files with their paths (so the install/image) and, on 0.24.0, the env vars of
# envs.compile_factors (envs.py:2007). --max-num-seqs enters 0.24.0 through the CUDA-graph capture
# sizes it sets in the compilation config (config/vllm.py:1690); --enable-sleep-mode through ModelConfig
# (model.py:289, not in its ignored list). On 0.11.0 neither enters, and of --compilation-config only
# level, backend, custom_ops, splitting_ops, use_inductor, the inductor settings and the pass config
# (compilation.py:366-387), not cudagraph_mode. --gpu-memory-utilization and prefix caching never enter.
COMPILE_KEY_ARGS = {
    "0.24.0": ("--model", "--dtype", "--quantization", "--max-model-len", "--enable-sleep-mode",
               "--max-num-seqs", "--max-num-batched-tokens", "--compilation-config",
               "--tensor-parallel-size", "--trust-remote-code"),
    "0.11.0": ("--model", "--dtype", "--quantization", "--max-model-len", "--compilation-config",
               "--tensor-parallel-size", "--trust-remote-code"),
}

NUM = r"(\d+(?:\.\d+)?)"
# 0.24.0 core.py:328-346 ("... took X s (compilation: Y s)", "... took X s" when nothing compiled);
# 0.11.0 core.py:210 ("... took X seconds", no compilation figure)
INIT = re.compile(r"init engine \(profile, create kv cache, warmup model\) took " + NUM
                  + r" (s|seconds)(?: \(compilation: " + NUM + " s)?")
# a graph compiled in this start: 0.24.0 backends.py:394; 0.11.0 backends.py:218/221
COMPILED = re.compile(r"Compiling a graph for (?:compile range .+?|dynamic shape|shape \S+) takes " + NUM + " s")
# graphs loaded from the cache: 0.24.0 backends.py:293, decorators.py:312 (AOT); 0.11.0 backends.py:165/169
LOADED = re.compile(r"Directly load the compiled graph\(s\) for .+? from the cache, took " + NUM + " s"
                    r"|Directly load AOT compilation from path")
# 0.24.0 monitor.py:20 "took" (per compiled function); 0.11.0 monitor.py:34 "takes" (a running total)
TORCH_COMPILE = re.compile(r"torch\.compile (takes|took) " + NUM + " s in total")
# 0.24.0 gpu/model_runner.py:303 and gpu_model_runner.py:5256 ("GiB memory and"); 0.11.0 gpu_model_runner.py:2653
WEIGHTS = re.compile(r"Model loading took " + NUM + r" GiB(?: memory)? and " + NUM + " seconds")
# 0.24.0 gpu/model_runner.py:727 and gpu_model_runner.py:6657; 0.11.0 gpu_model_runner.py:3480 (whole seconds)
GRAPHS = re.compile(r"Graph capturing finished in " + NUM + " secs")
# 0.24.0 backends.py:1090; 0.11.0 backends.py:548
CACHE_DIR = re.compile(r"Using cache directory: (\S+) for vLLM's torch\.compile")
CACHE_KEY = re.compile(r"torch_compile_cache/([^/\s]+)/rank_")


def segments(text):
    """The starts of one server log, each from its header line on (text before the first header is dropped)."""
    starts = [m.start() for m in re.finditer("^" + re.escape(HEADER), text, re.M)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _first(pattern, text, group=1):
    m = pattern.search(text)
    return float(m.group(group)) if m else None


def compile_seconds(text, init):
    """The init-engine line's compilation figure, else the torch.compile total(s)."""
    if init and init.group(3):
        return float(init.group(3))
    totals = TORCH_COMPILE.findall(text)
    if totals:
        # 0.11.0 logs a running total ("takes"): the last is the sum; 0.24.0 one line per function
        return float(totals[-1][1]) if totals[-1][0] == "takes" else round(sum(float(t) for _, t in totals), 6)
    if init and init.group(2) == "s":
        return 0.0      # 0.24.0 leaves the figure out when the compilation time is 0 (core.py:343-346)
    return None


def breakdown(segment, first_log_s=None):
    """The load breakdown of one start (the fields of kit.workload.events.BREAKDOWN); None where the log
    does not say. first_log_s is the kit's own measurement (process start -> first output), if any."""
    init = INIT.search(segment)
    weights = WEIGHTS.search(segment)
    cache_dir = CACHE_DIR.search(segment)
    key = CACHE_KEY.search(cache_dir.group(1)) if cache_dir else None
    cache = "miss" if COMPILED.search(segment) else "hit" if LOADED.search(segment) else None
    out = {"compile_cache": cache,
           "compile_s": compile_seconds(segment, init),
           "weights_gib": float(weights.group(1)) if weights else None,
           "weights_s": float(weights.group(2)) if weights else None,
           "graphs_s": _first(GRAPHS, segment),
           "engine_init_s": float(init.group(1)) if init else None,
           "first_log_s": None if first_log_s is None else round(float(first_log_s), 6),
           "cache_key": key.group(1) if key else None}
    return out
