"""`kit sweep`: which sleep level for which model size, as units of an ordinary run.

A sweep is a run whose units are (model, level) pairs, named `guide-<model slug>-l<level>`, each of one
server (kit/workload/steps.py sweep_steps); the workload, events, lanes, runtimes, manifest, bundles and
verify are the study's. The workload runs the unit's model as model "A": the events' model field keeps
meaning "which server of the unit" (a sweep unit has one), so their schema, readers and the sleep checks
stay as they are, and which model "A" was is recorded once per unit in the manifest (its "sweep" part),
the place that already names the models of a run.

Before anything starts, each model's memory is estimated from its config.json (parameters x dtype bytes
+ the KV cache of one --max-model-len sequence) against --gpu-memory-utilization x the GPU's memory
(NVML, the smallest of the run's GPUs; --gpu-memory-gib overrides it). A model over that budget is
skipped, with the reason, in the manifest; without a GPU reading the estimate is recorded and nothing is
skipped. The estimate leaves out activations and CUDA graphs (a few GiB): a model just under the budget
may still fail to start, and its unit then fails with vLLM's own message.

`kit sweep --resume RUN_ID --add-models M,...` grows a sweep run (the large models in a later session, on
another host): the added models get units at the run's levels and a fit against the GPU memory of that
host, now (or its --gpu-memory-gib), which their entries record with when and by which command they joined.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path

from kit import gpus, layout
from kit.errors import BadInput
from kit.workload import scenarios

UNIT_PREFIX = "guide-"
LEVELS = (1, 2)
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}
GIB = 2**30


def slug(model):
    """'Qwen/Qwen3-0.6B' or '/models/qwen3-0.6b/' -> 'qwen3-0.6b': the model's part of its unit names."""
    return _name_slug(model) or "model"


def _name_slug(model):
    name = Path(str(model).rstrip("/")).name or str(model)
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")


def unit_name(model, level):
    return f"{UNIT_PREFIX}{slug(model)}-l{level}"


def arm_for(level):
    return f"sweep-l{level}"


def parse_models(text, option="models"):
    models = [m.strip() for m in str(text).split(",") if m.strip()]
    if not models:
        raise BadInput(f"--{option}: give at least one model (hub names or folders, comma-separated)")
    for m in models:
        name = _name_slug(m)
        if not name:      # ".", "~", "/", "模型": the units would be named after nothing
            raise BadInput(f"--{option} {m!r}: the model's units are named after its last path part, and this has "
                           "no letter or digit (a-z, 0-9)",
                           "give the folder by a path that ends in its name, e.g. ../qwen3-0.6b, or by a link so named")
        if len(name) > layout.MAX_RUN_ID:     # as a run id; else the run starts and its first unit folder fails
            raise BadInput(f"--{option} {m[:60]!r}...: the model's units are named after its last path part, and this "
                           f"has {len(name)} characters (at most {layout.MAX_RUN_ID})",
                           "give the folder by a link with a shorter name")
    return tuple(dict.fromkeys(models))


def parse_levels(text):
    try:
        levels = tuple(sorted({int(x) for x in str(text).split(",") if x.strip()}))
    except ValueError:
        levels = ()
    if not levels or any(x not in LEVELS for x in levels):
        raise BadInput(f"--levels {text!r}: give sleep levels 1 and/or 2, e.g. 1,2")
    return levels


def check(models, levels):
    """BadInput unless the sweep's models and levels make distinct units."""
    parse_levels(",".join(map(str, levels)))
    seen = {}
    for m in models:
        if slug(m) in seen:
            raise BadInput(f"--models: {seen[slug(m)]} and {m} would both be named {slug(m)!r}",
                           "give folders with different names")
        seen[slug(m)] = m


# -- the fit estimate ---------------------------------------------------------------------------------
def find_config(model, hub=None):
    """config.json of a local model folder, or of a hub name in the HF cache `hub`; None when not here."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path / "config.json" if (path / "config.json").is_file() else None
    if hub is not None:
        found = sorted((Path(hub) / f"models--{model.replace('/', '--')}" / "snapshots").glob("*/config.json"),
                       key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None
    return None


def count_params(cfg):
    """Parameters of a decoder-only transformer (dense, or Qwen/Mixtral-style MoE) from its config.json;
    None when the config lacks the sizes. Counts what vLLM loads: embeddings (twice unless tied),
    attention, MLP or experts and router, norms (Qwen3's q/k norms too) and Qwen2's q/k/v biases."""
    cfg = cfg.get("text_config") or cfg
    try:
        hidden, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
        heads = cfg["num_attention_heads"]
    except KeyError:
        return None
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    model_type = cfg.get("model_type", "")
    attn = hidden * head_dim * (2 * heads + 2 * kv_heads)
    if cfg.get("attention_bias") or model_type.startswith("qwen2"):
        attn += head_dim * (heads + 2 * kv_heads)
    if model_type.startswith("qwen3"):
        attn += 2 * head_dim                               # q_norm, k_norm
    experts = cfg.get("num_experts") or cfg.get("num_local_experts") or 0
    dense_mlp = 3 * hidden * cfg.get("intermediate_size", 0)
    moe_mlp = 0
    if experts:
        moe_mlp = experts * 3 * hidden * (cfg.get("moe_intermediate_size") or cfg.get("intermediate_size", 0))
        moe_mlp += hidden * experts                       # router
        shared = cfg.get("shared_expert_intermediate_size") or 0
        moe_mlp += 3 * hidden * shared + (hidden if shared else 0)
    step, dense_only = cfg.get("decoder_sparse_step") or 1, set(cfg.get("mlp_only_layers") or [])
    total = 0
    for i in range(layers):
        sparse = experts and i not in dense_only and (i + 1) % step == 0
        total += attn + (moe_mlp if sparse else dense_mlp) + 2 * hidden
    embeddings = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    return total + embeddings + hidden


def weight_bytes(cfg):
    """(dtype said, bytes per parameter, note or None)."""
    quant = cfg.get("quantization_config") or {}
    if quant:
        method = str(quant.get("quant_method", "")).lower()
        if "fp8" in method:
            return "fp8", 1, None
        if quant.get("bits"):
            return f"{method} {quant['bits']}-bit", quant["bits"] / 8, "quantized: scales not counted"
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or (cfg.get("text_config") or {}).get("torch_dtype") or "")
    if dtype in DTYPE_BYTES:
        return dtype, DTYPE_BYTES[dtype], None
    return "bfloat16", 2, f"dtype {dtype or 'not stated'}: 2 bytes per parameter assumed"


def kv_bytes_per_token(cfg, nbytes):
    cfg = cfg.get("text_config") or cfg
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return 2 * cfg["num_hidden_layers"] * (cfg.get("num_key_value_heads") or heads) * head_dim * nbytes


def server_arg(args, name):
    return args[args.index(name) + 1] if name in args else None


def estimate(cfg, server_args=None):
    """What a server of this config needs on the GPU: {params, dtype, weights_gib, kv_gib, needed_gib,
    utilization, max_model_len, note}; params and the GiB are None when the config lacks the sizes."""
    args = server_args or scenarios.SWEEP_SERVER_ARGS
    util, max_len = float(server_arg(args, "--gpu-memory-utilization")), int(server_arg(args, "--max-model-len"))
    params = count_params(cfg)
    out = {"params": params, "dtype": None, "weights_gib": None, "kv_gib": None, "needed_gib": None,
           "utilization": util, "max_model_len": max_len, "note": None}
    if params is None:
        out["note"] = "config.json lacks the sizes (hidden_size, num_hidden_layers, vocab_size, ...)"
        return out
    dtype, nbytes, note = weight_bytes(cfg)
    weights = params * nbytes
    kv = kv_bytes_per_token(cfg, nbytes if nbytes >= 2 else 2) * max_len
    out.update(dtype=dtype, weights_gib=round(weights / GIB, 3), kv_gib=round(kv / GIB, 3),
               needed_gib=round((weights + kv) / GIB, 3), note=note)
    return out


def verdict(est, gpu_gib):
    """(fits: True/False/None, reason for a skip or None)."""
    if est["needed_gib"] is None or not gpu_gib:
        return None, None
    budget = est["utilization"] * gpu_gib
    if est["needed_gib"] <= budget:
        return True, None
    return False, (f"does not fit: needs about {est['needed_gib']:.1f} GiB (weights {est['weights_gib']:.1f} GiB "
                   f"{est['dtype']} + KV cache {est['kv_gib']:.2f} GiB for {est['max_model_len']} tokens), more than "
                   f"--gpu-memory-utilization {est['utilization']:g} x {gpu_gib:.1f} GiB = {budget:.1f} GiB")


def gpu_memory(options, chosen):
    """(GiB, where the number comes from) of the GPU the sweep's servers get: --gpu-memory-gib, else the
    smallest of the run's GPUs (chosen: [kit.gpus.Gpu], None where the runtime places the jobs) by NVML;
    (None, why not) without either."""
    if options.gpu_memory_gib:
        return float(options.gpu_memory_gib), "--gpu-memory-gib"
    if chosen is None:
        return None, (f"not read: the {options.runtime} runtime places the jobs (give --gpu-memory-gib to skip "
                      "models that do not fit)")
    found = [(gpus.total_mib(g), g.id) for g in chosen]
    found = [(mib, gid) for mib, gid in found if mib]
    if not found:
        return None, "not read: no GPU memory from NVML here (give --gpu-memory-gib to skip models that do not fit)"
    mib, gid = min(found)
    return round(mib / 1024, 3), f"NVML, GPU {gid}" + (" (the smallest of the run's)" if len(found) > 1 else "")


def entry(model, levels, model_info, hub, gpu_gib):
    """One model's entry in the "sweep" part: its identity (model_info(name) -> dict), estimate from its
    config.json (a folder, or in the HF cache `hub`), verdict against gpu_gib and units."""
    config = find_config(model, hub)
    try:
        cfg = json.loads(config.read_text()) if config else None
    except (OSError, ValueError):
        cfg = None
    est = estimate(cfg) if isinstance(cfg, dict) else dict(estimate({}), note="no readable config.json here")
    fits, reason = verdict(est, gpu_gib)
    return {"name": model, "slug": slug(model), **model_info(model), "config": str(config) if config else None,
            "estimate": est, "fits": fits, "skipped": reason,
            "units": {str(level): unit_name(model, level) for level in levels}}


def record(options, model_info, chosen, hub):
    """The manifest's "sweep" part: levels, the GPU memory used for the fit (of the chosen GPUs), and per
    model its entry (entry())."""
    gpu_gib, source = gpu_memory(options, chosen)
    models = [entry(m, options.sweep_levels, model_info, hub, gpu_gib) for m in options.sweep_models]
    return {"levels": list(options.sweep_levels), "gpu_memory_gib": gpu_gib, "gpu_memory_source": source,
            "server_args": scenarios.SWEEP_SERVER_ARGS, "models": models}


# -- models added to a sweep run (kit sweep --resume RUN_ID --add-models ...) ------------------------------
@dataclass(frozen=True)
class Addition:
    """The models to add to a sweep run, and the GPU memory (GiB; 0: this host's, by NVML) they must fit."""
    models: tuple
    gpu_memory_gib: float = 0.0


def check_added(part, added):
    """BadInput unless each model added to the run whose "sweep" part this is gets units of its own."""
    have = {m["slug"]: f"the run's model {m['name']}" for m in part["models"]}
    for model in added:
        if slug(model) in have:
            raise BadInput(f"--add-models {model} collides with {have[slug(model)]}: both would be named "
                           f"{slug(model)!r}", "leave it out, or give a folder with another name")
        have[slug(model)] = model


def added_entries(part, added, options, model_info, chosen, hub, when):
    """The entries (entry()) of models added to a sweep run, at its levels, each fitted against the GPU memory
    of now (options: the run's, with this command's --gpu-memory-gib; chosen: this host's GPUs) and saying so
    in its "added": {at, command, gpu_memory_gib, gpu_memory_source}. The part's own gpu_memory_* stay those
    of the models it started with."""
    gpu_gib, source = gpu_memory(options, chosen)
    return [dict(entry(m, part["levels"], model_info, hub, gpu_gib),
                 added=dict(when, gpu_memory_gib=gpu_gib, gpu_memory_source=source)) for m in added]


def fit_memory(part, model):
    """(GiB, source) the model's verdict was made against: its own when it was added later, else the run's."""
    own = model.get("added") or part
    return own["gpu_memory_gib"], own["gpu_memory_source"]


def skipped_units(part):
    return {u for m in (part or {}).get("models", []) if m.get("skipped") for u in m["units"].values()}


def unit_model(part, unit):
    """The model entry of a unit in a manifest's "sweep" part (or None), or None (not a sweep unit)."""
    return next((m for m in (part or {}).get("models", []) if unit in m["units"].values()), None)


def plan_lines(part, title="sweep"):
    """What --dry-run says of the fit: one line per model."""
    lines = [f"{title}: levels {', '.join(map(str, part['levels']))}; GPU memory "
             + (f"{part['gpu_memory_gib']:.1f} GiB ({part['gpu_memory_source']})" if part["gpu_memory_gib"]
                else part["gpu_memory_source"])]
    for m in part["models"]:
        est = m["estimate"]
        size = (f"{est['params'] / 1e9:.2f} B params, about {est['needed_gib']:.1f} GiB" if est["params"]
                else f"size unknown ({est['note']})")
        state = f"SKIPPED, {m['skipped']}" if m["skipped"] else ("fits" if m["fits"] else "not checked")
        lines.append(f"  {m['name']}: {size}: {state}")
    return lines


def added_lines(run_id, part, entries):
    """What --dry-run says of the fit of models added to a run (entries: added_entries())."""
    gib, source = fit_memory(part, entries[0])
    return plan_lines(dict(part, gpu_memory_gib=gib, gpu_memory_source=source, models=entries),
                      f"sweep {run_id}, adding {len(entries)} model(s)")
