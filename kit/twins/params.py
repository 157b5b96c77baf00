"""Every tensor a twin stores, named and shaped as on the hub, and the parameter counts that follow
from a config alone (nothing is allocated or imported)."""

from math import prod

from kit.twins.catalogue import twin_config


def stored_params(cfg: dict) -> list[tuple[str, tuple]]:
    """(name, shape) of every tensor the checkpoint stores, named as on the hub and in the order
    transformers 4 lists a model's parameters; a tied lm_head is not stored. A MoE's experts are one
    tensor each (transformers 5 fuses them on load; vLLM reads them one by one)."""
    h, vocab = cfg["hidden_size"], cfg["vocab_size"]
    params = [("model.embed_tokens.weight", (vocab, h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        params += _attention(cfg, p + "self_attn.") + _mlp(cfg, i, p + "mlp.")
        params += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,))]
    params.append(("model.norm.weight", (h,)))
    if not cfg["tie_word_embeddings"]:
        params.append(("lm_head.weight", (vocab, h)))
    return params


def _attention(cfg: dict, p: str) -> list[tuple[str, tuple]]:
    h, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if cfg["model_type"] == "phi3":
        hd = h // heads
        return [(p + "o_proj.weight", (h, heads * hd)), (p + "qkv_proj.weight", ((heads + 2 * kv) * hd, h))]
    hd = cfg["head_dim"]
    return [(p + "q_proj.weight", (heads * hd, h)), (p + "k_proj.weight", (kv * hd, h)),
            (p + "v_proj.weight", (kv * hd, h)), (p + "o_proj.weight", (h, heads * hd)),
            (p + "q_norm.weight", (hd,)), (p + "k_norm.weight", (hd,))]


def _mlp(cfg: dict, layer: int, p: str) -> list[tuple[str, tuple]]:
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    if cfg["model_type"] == "phi3":
        return [(p + "gate_up_proj.weight", (2 * inter, h)), (p + "down_proj.weight", (h, inter))]
    if not _is_moe_layer(cfg, layer):
        return [(p + "gate_proj.weight", (inter, h)), (p + "up_proj.weight", (inter, h)),
                (p + "down_proj.weight", (h, inter))]
    inter, experts = cfg["moe_intermediate_size"], cfg["num_experts"]
    params = [(p + "gate.weight", (experts, h))]
    for e in range(experts):
        x = f"{p}experts.{e}."
        params += [(x + "gate_proj.weight", (inter, h)), (x + "up_proj.weight", (inter, h)),
                   (x + "down_proj.weight", (h, inter))]
    return params


def _is_moe_layer(cfg: dict, layer: int) -> bool:
    """Qwen3-MoE's rule (transformers and vLLM): experts in every decoder_sparse_step-th layer."""
    return (cfg.get("num_experts", 0) > 0 and layer not in cfg.get("mlp_only_layers", [])
            and (layer + 1) % cfg.get("decoder_sparse_step", 1) == 0)


def count_params(name: str, tiny: bool = False) -> int:
    """Parameters a twin stores, from its config alone (nothing is allocated or imported)."""
    return total_numel(stored_params(twin_config(name, tiny)))


def active_params(name: str) -> int:
    """Parameters one token uses: a MoE layer's router and num_experts_per_tok of its experts."""
    cfg = twin_config(name)
    per_expert = 3 * cfg["hidden_size"] * cfg.get("moe_intermediate_size", 0)
    idle = sum(cfg["num_experts"] - cfg["num_experts_per_tok"]
               for i in range(cfg["num_hidden_layers"]) if _is_moe_layer(cfg, i))
    return count_params(name) - idle * per_expert


def total_numel(params: list[tuple[str, tuple]]) -> int:
    return sum(prod(shape) for _, shape in params)
