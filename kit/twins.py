"""Shape twins: Hugging Face model directories with random weights and a real model's shape.

A twin has the architecture and every size, shape and cost hyper-parameter of a public model
(config.json fields copied from the real config), random bf16 weights and a small byte-level BPE
tokenizer. It exists so that vLLM can be started, put to sleep and woken on GPU hosts that cannot
reach a model hub; its output is meaningless text.

Same (name, seed, tiny) -> byte-identical files on any machine: the weights are derived from integer
random bits with exact arithmetic, the JSON files are written here (not by transformers, whose output
carries its version), and nothing depends on the device, thread count or hash seed. The random bits
are a counter-based hash (splitmix64 of the element index, keyed by the tensor's name) in int64 torch
ops, so a CUDA GPU makes the same bytes as the CPU, only faster. The two twins of the study
(qwen3-0.6b, phi-3-mini) keep the CPU-only Mersenne Twister bits they were first made with, so they
stay byte-identical to the twins recorded in results/reference.
torch, transformers, tokenizers and safetensors are an optional extra: `pip install '.[twins]'`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from collections.abc import Callable

from kit.errors import BadInput, TwinDependencyError

INSTALL_HINT = "pip install '.[twins]' (or .venv/bin/pip install -e '.[twins]')"
RECORD = "sleepkit-twin.json"     # what write_twin made, beside the files


@dataclass(frozen=True)
class Twin:
    name: str
    source_repo: str
    config: dict            # config.json fields; token ids are filled in from the tokenizer
    tiny: dict              # overrides for tiny=True: same architecture and rope type, small sizes
    chat: str               # "chatml" or "phi3"
    params: int             # full-size parameter count (checked on the meta device)
    from_source: tuple      # config.json keys whose values are the real model's
    verified_from: str      # where the real config.json was read
    changes: dict           # key -> how and why the twin differs from the real config.json
    left_out: str = ""      # parts of the real model that the twin does not have
    tokens: dict = field(default_factory=dict)
    bits: str = "splitmix64"   # random bits of the weights: "splitmix64" (any device) or "mt19937" (CPU)


# Qwen/Qwen3-0.6B config.json (726 bytes, transformers_version 4.51.0).
_QWEN3_0_6B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

def _qwen3_dense(hidden: int, intermediate: int, layers: int, heads: int, tie: bool) -> dict:
    """A dense Qwen3 config.json: the fields all Qwen3 hub configs share (those of 0.6B: 8 KV heads,
    head_dim 128, 40960 positions, rope_theta 1e6, vocab 151936) and one size's own fields."""
    return {**_QWEN3_0_6B, "hidden_size": hidden, "intermediate_size": intermediate,
            "num_hidden_layers": layers, "max_window_layers": layers, "num_attention_heads": heads,
            "tie_word_embeddings": tie}


# Sizes of Qwen/Qwen3-{1.7B,4B,8B,14B,32B} config.json (all transformers_version 4.51.x). Read in:
# 4B, 8B, 14B, 32B: citsjtu2020/LLM-Prof@8434c8d1 sglang/Model_Config.md, which quotes the configs whole;
# 1.7B: mephisto1484/Neko-LoRA-Build-Your-AI-Catgirl@1d5d0234 Qwen3-1.7B/config.json (a transformers 4.57
# re-save: it adds layer_types and dtype float16, the sizes are the hub's). See Twin.verified_from.
_QWEN3_SIZES = {   # name: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, tied;
    # then the parameters stored (a tied lm_head is stored once, as embed_tokens)
    "qwen3-1.7b": ((2048, 6144, 28, 16, True), 1_720_574_976),
    "qwen3-4b": ((2560, 9728, 36, 32, True), 4_022_468_096),
    "qwen3-8b": ((4096, 12288, 36, 32, False), 8_190_735_360),
    "qwen3-14b": ((5120, 17408, 40, 40, False), 14_768_307_200),
    "qwen3-32b": ((5120, 25600, 64, 64, False), 32_762_123_264),
}

# Qwen/Qwen3-Coder-30B-A3B-Instruct config.json (transformers_version 4.52.3) as vendored whole in
# ztxz16/fastllm@f8f04c33 Qwen3-Coder-30B-A3B-Instruct/config.json; its model.safetensors.index.json
# there gives total_size 61064245248 bytes = 30,532,122,624 bf16 parameters, this twin's exact count.
_QWEN3_CODER_30B_A3B = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "attention_dropout": 0.0,
    "decoder_sparse_step": 1,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 5472,
    "max_position_embeddings": 262144,
    "max_window_layers": 28,
    "mlp_only_layers": [],
    "moe_intermediate_size": 768,
    "norm_topk_prob": True,
    "num_attention_heads": 32,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 48,
    "num_key_value_heads": 4,
    "output_router_logits": False,
    "qkv_bias": False,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 10000000.0,
    "router_aux_loss_coef": 0.0,
    "shared_expert_intermediate_size": 0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_qk_norm": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}


# rope_scaling of microsoft/Phi-3-vision-128k-instruct config.json (48 = head_dim 96 / 2 values each).
# Phi-3-mini-128k-instruct has the same long_factor but a different short_factor.
_PHI3V_LONG_FACTOR = [
    1.0299999713897705, 1.0499999523162842, 1.0499999523162842, 1.0799999237060547,
    1.2299998998641968, 1.2299998998641968, 1.2999999523162842, 1.4499999284744263,
    1.5999999046325684, 1.6499998569488525, 1.8999998569488525, 2.859999895095825,
    3.68999981880188, 5.419999599456787, 5.489999771118164, 5.489999771118164,
    9.09000015258789, 11.579999923706055, 15.65999984741211, 15.769999504089355,
    15.789999961853027, 18.360000610351562, 21.989999771118164, 23.079999923706055,
    30.009998321533203, 32.35000228881836, 32.590003967285156, 35.56000518798828,
    39.95000457763672, 53.840003967285156, 56.20000457763672, 57.95000457763672,
    59.29000473022461, 59.77000427246094, 59.920005798339844, 61.190006256103516,
    61.96000671386719, 62.50000762939453, 63.3700065612793, 63.48000717163086,
    63.48000717163086, 63.66000747680664, 63.850006103515625, 64.08000946044922,
    64.760009765625, 64.80001068115234, 64.81001281738281, 64.81001281738281,
]
_PHI3V_SHORT_FACTOR = [
    1.05, 1.05, 1.05, 1.1, 1.1, 1.1, 1.2500000000000002, 1.2500000000000002,
    1.4000000000000004, 1.4500000000000004, 1.5500000000000005, 1.8500000000000008,
    1.9000000000000008, *[2.000000000000001] * 19, 2.1000000000000005, 2.1000000000000005, 2.2,
    2.3499999999999996, 2.3499999999999996, 2.3499999999999996, 2.3499999999999996,
    2.3999999999999995, 2.3999999999999995, 2.6499999999999986, 2.6999999999999984,
    2.8999999999999977, 2.9499999999999975, 3.049999999999997, 3.049999999999997, 3.049999999999997,
]

# The language-model part of microsoft/Phi-3-vision-128k-instruct config.json
# (transformers_version 4.38.1), i.e. the Phi-3-mini-128k shape.
_PHI3_MINI = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "attention_dropout": 0.0,
    "hidden_act": "silu",
    "hidden_size": 3072,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "original_max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    # transformers 4.x wants exactly these three keys; 5.x also reads them (as rope_parameters).
    "rope_scaling": {"type": "longrope", "long_factor": _PHI3V_LONG_FACTOR,
                     "short_factor": _PHI3V_SHORT_FACTOR},
    "rope_theta": 10000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 32064,
}

_COMMON_CHANGES = {
    "bos_token_id/eos_token_id/pad_token_id": "ids of the twin's 4096-token tokenizer",
    "rope_parameters": "added: transformers 5 spelling of rope_theta/rope_scaling, same values",
    "dtype": "added: transformers >= 4.56 spelling of torch_dtype",
    "transformers_version": "left out: it would tie the file bytes to the installed transformers",
}

_CHATML_TOKENS = {"special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": "<|endoftext|>",
                  "eos": "<|im_end|>", "pad": "<|endoftext|>", "stop": ["<|im_end|>", "<|endoftext|>"]}
_QWEN3_TINY = {"vocab_size": 4096, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "max_window_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32}
_QWEN3_CONFIG_SEEN_IN = {
    "qwen3-1.7b": "mephisto1484/Neko-LoRA-Build-Your-AI-Catgirl@1d5d0234 Qwen3-1.7B/config.json (a "
                  "transformers 4.57.1 re-save: dtype float16 and layer_types are the re-save's); the "
                  "same sizes in huggingface.co/keras/qwen3_1.7b_en's card",
    "qwen3-4b": "citsjtu2020/LLM-Prof@8434c8d1 sglang/Model_Config.md (a 4.51.2 copy with use_cache "
                "false); the same sizes in codefuse-ai/F2LLM-4B's config.json, a Qwen3-4B derivative",
    "qwen3-8b": "citsjtu2020/LLM-Prof@8434c8d1 sglang/Model_Config.md, byte for byte the config.json "
                "that huggingface.co/thejaminator/qwen-hook-layer-9-step-500 copied from Qwen/Qwen3-8B",
    "qwen3-14b": "citsjtu2020/LLM-Prof@8434c8d1 sglang/Model_Config.md; the same sizes in "
                 "huggingface.co/keras/qwen3_14b_en's card",
    "qwen3-32b": "citsjtu2020/LLM-Prof@8434c8d1 sglang/Model_Config.md",
}


def _qwen3_twin(name: str, sizes: tuple, params: int) -> Twin:
    config = _qwen3_dense(*sizes)
    tie = config["tie_word_embeddings"]
    lm_head = {"lm_head": "not stored: tied to embed_tokens"} if tie else {}
    return Twin(
        name=name, source_repo=f"Qwen/Qwen3-{name.split('-')[1].upper()}", config=config,
        tiny=_QWEN3_TINY, chat="chatml", params=params,
        from_source=tuple(config),
        verified_from=f"Qwen/Qwen3 config.json sizes as quoted in {_QWEN3_CONFIG_SEEN_IN[name]}",
        changes={**_COMMON_CHANGES, "rope_theta": "1000000 written as 1000000.0 (same value)",
                 **lm_head},
        tokens=_CHATML_TOKENS)


TWINS: dict[str, Twin] = {
    "qwen3-0.6b": Twin(
        name="qwen3-0.6b",
        source_repo="Qwen/Qwen3-0.6B",
        config=_QWEN3_0_6B,
        tiny=_QWEN3_TINY,
        chat="chatml",
        params=596_049_920,
        from_source=tuple(_QWEN3_0_6B),
        verified_from=(
            "Qwen/Qwen3-0.6B config.json, quoted verbatim (726 bytes, the size the hub's file list "
            "gives) in huggingface.co/TensorStack/TextEncoder/Qwen-3-06B/config.json and in a Rust "
            "source comment citing huggingface.co/Qwen/Qwen3-0.6B/raw/main/config.json"),
        changes={**_COMMON_CHANGES,
                 "rope_theta": "1000000 written as 1000000.0 (same value)",
                 "lm_head": "not stored: tied to embed_tokens (the hub's 1.5 GB file also holds a "
                            "copy as lm_head.weight; this twin's file is 1.19 GB)"},
        tokens=_CHATML_TOKENS,
        bits="mt19937",
    ),
    "phi-3-mini": Twin(
        name="phi-3-mini",
        source_repo="microsoft/Phi-3-vision-128k-instruct",
        config=_PHI3_MINI,
        tiny={"vocab_size": 4096, "hidden_size": 192, "intermediate_size": 256, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2},   # head_dim stays 96: 48 factors
        chat="phi3",
        params=3_821_079_552,
        from_source=tuple(k for k in _PHI3_MINI if k not in ("architectures", "model_type")),
        verified_from=(
            "microsoft/Phi-3-vision-128k-instruct config.json as copied into "
            "sdpython/experimental-experiment@9a6b2775 experimental_experiment/torch_models/"
            "llm_model_helper.py get_phi_3_vision_128k_instruct(); short/long factors identical in "
            "Blaizzy/mlx-vlm mlx_vlm/tests/test_models.py test_phi3_v"),
        changes={**_COMMON_CHANGES,
                 "architectures": "Phi3VForCausalLM -> Phi3ForCausalLM (language model only)",
                 "model_type": "phi3_v -> phi3",
                 "rope_scaling.type": "'su' -> 'longrope' (the name transformers >= 4.43 and vLLM use "
                                      "for it; 'su' is the old alias)",
                 "embd_layer/img_processor/auto_map": "left out with the vision tower",
                 "_attn_implementation": "flash_attention_2 left out (not needed to load)"},
        left_out=("the vision tower (CLIP ViT-L/14-336 image encoder and projection, about 0.3e9 "
                  "parameters): this twin is only the Phi-3-mini language model of Phi-3-vision"),
        tokens={"special": ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>",
                            "<|assistant|>", "<|end|>"],
                "bos": "<s>", "eos": "<|end|>", "pad": "<|endoftext|>", "unk": "<unk>",
                "stop": ["<|end|>", "<|endoftext|>"]},
        bits="mt19937",
    ),
    **{name: _qwen3_twin(name, sizes, params) for name, (sizes, params) in _QWEN3_SIZES.items()},
    "qwen3-coder-30b-a3b": Twin(
        name="qwen3-coder-30b-a3b",
        source_repo="Qwen/Qwen3-Coder-30B-A3B-Instruct",
        config=_QWEN3_CODER_30B_A3B,
        tiny={**_QWEN3_TINY, "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2},
        chat="chatml",
        params=30_532_122_624,
        from_source=tuple(_QWEN3_CODER_30B_A3B),
        verified_from=(
            "Qwen/Qwen3-Coder-30B-A3B-Instruct config.json and model.safetensors.index.json as vendored "
            "in ztxz16/fastllm@f8f04c33 Qwen3-Coder-30B-A3B-Instruct/ (the index's total_size, "
            "61064245248 bytes, is 2 x this twin's parameter count); the model card says 30.5B "
            "parameters, 3.3B activated, 48 layers, 32 Q / 4 KV heads, 128 experts, 8 activated"),
        changes={**_COMMON_CHANGES,
                 "rope_theta": "10000000 written as 10000000.0 (same value)",
                 "experts": "stored one tensor per expert (model.layers.N.mlp.experts.E.gate_proj.weight "
                            "...), the hub's layout, which vLLM and transformers both load"},
        tokens=_CHATML_TOKENS,
    ),
}

_CHAT_TEMPLATES = {
    "chatml": ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
               "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "phi3": ("{% for message in messages %}{{ '<|' + message['role'] + '|>' + '\\n' + "
             "message['content'] + '<|end|>' + '\\n' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|assistant|>' + '\\n' }}{% endif %}"),
}

TOKENIZER_VOCAB = 4096
_TOKENIZER_SEED = 0           # the tokenizer is the same for every weight seed
_SHARD_BYTES = 5 * 10**9      # like transformers' max_shard_size="5GB"
_CHUNK = 1 << 22              # elements generated at a time per tensor (CPU; values do not depend on it)
_CHUNK_GPU = 1 << 26
_STD = 0.02
# Irwin-Hall sum of four int16 uniforms, centred and doubled to an even integer: its std is
# 2 * sqrt(4 * (2**32 - 1) / 12); the float32 multiply by _SCALE maps that to _STD.
_SCALE = _STD / (2 * (4 * ((1 << 32) - 1) / 12) ** 0.5)


def _deps() -> SimpleNamespace:
    """torch, transformers, tokenizers and safetensors.torch, or TwinDependencyError."""
    # find_spec imports nothing: importing transformers while torch is missing would make it
    # remember "no torch" for the rest of the process
    missing = [m for m in ("torch", "transformers", "tokenizers", "safetensors")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise TwinDependencyError(f"model twins need {', '.join(missing)}: {INSTALL_HINT}")
    try:
        import safetensors.torch
        import tokenizers
        import torch
        import transformers
    except ImportError as e:
        raise TwinDependencyError(f"model twins: {e}: {INSTALL_HINT}") from None
    return SimpleNamespace(torch=torch, transformers=transformers, tokenizers=tokenizers,
                           safetensors=safetensors.torch)


def list_twins() -> list[dict]:
    return [{"name": t.name, "architecture": t.config["architectures"][0], "source_repo": t.source_repo,
             "params": t.params, "weights_bytes": 2 * t.params, "left_out": t.left_out}
            for t in TWINS.values()]


def get_twin(name: str) -> Twin:
    if name not in TWINS:
        raise KeyError(f"unknown twin {name!r}; known: {', '.join(TWINS)}")
    return TWINS[name]


def twin_config(name: str, tiny: bool = False, token_ids: dict | None = None) -> dict:
    """The config.json contents of a twin (token ids left out unless given)."""
    twin = get_twin(name)
    cfg = json.loads(json.dumps(twin.config))          # deep copy
    if tiny:
        cfg.update(twin.tiny)
    rope = dict(cfg["rope_scaling"] or {"type": "default"}, rope_theta=cfg["rope_theta"])
    rope["rope_type"] = rope.pop("type")
    cfg["rope_parameters"] = rope
    cfg["dtype"] = cfg["torch_dtype"]
    cfg.update(token_ids or {})
    return dict(sorted(cfg.items()))


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
    return _count(stored_params(twin_config(name, tiny)))


def active_params(name: str) -> int:
    """Parameters one token uses: a MoE layer's router and num_experts_per_tok of its experts."""
    cfg = twin_config(name)
    per_expert = 3 * cfg["hidden_size"] * cfg.get("moe_intermediate_size", 0)
    idle = sum(cfg["num_experts"] - cfg["num_experts_per_tok"]
               for i in range(cfg["num_hidden_layers"]) if _is_moe_layer(cfg, i))
    return count_params(name) - idle * per_expert


def _count(params: list[tuple[str, tuple]]) -> int:
    return sum(_numel(shape) for _, shape in params)


# ---- tokenizer ----

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but "
    "have an they you were her she there been one all we their has would when if so no will can more "
    "about what up out said do into time some could them other than then now only its like over also "
    "new any these two may first way well even model server memory sleep wake token request weight "
    "cache engine kernel device python data value level batch prompt stream reply offload host copy "
    "page block layer tensor shape config start stop ready health metric latency second minute"
).split()


def _corpus(seed: int = _TOKENIZER_SEED, lines: int = 30000) -> list[str]:
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiouy"]
    coined = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
                     for _ in range(4000)})
    pool = _WORDS * 8 + coined

    def line() -> str:
        words = [rng.choice(pool) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        text = " ".join(words).capitalize() + rng.choice(".?!,;:")
        return text + ("\n" if rng.random() < 0.2 else "")

    return [line() for _ in range(lines)]


@functools.lru_cache(maxsize=4)
def _train_tokenizer(tk, specials: tuple[str, ...]):
    """The same for every twin with these special tokens, so trained once per process."""
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB, special_tokens=list(specials), show_progress=False,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    if tok.get_vocab_size() != TOKENIZER_VOCAB:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} tokens, not {TOKENIZER_VOCAB}")
    return tok


def _tokenizer_config(twin: Twin, max_len: int, ids: dict) -> dict:
    t = twin.tokens
    added = {str(ids[s]): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": True} for s in t["special"]}
    cfg = {"added_tokens_decoder": added, "bos_token": t["bos"], "eos_token": t["eos"],
           "pad_token": t["pad"], "chat_template": _CHAT_TEMPLATES[twin.chat],
           "clean_up_tokenization_spaces": False, "model_max_length": max_len,
           "model_input_names": ["input_ids", "attention_mask"],
           "tokenizer_class": "PreTrainedTokenizerFast"}
    if "unk" in t:
        cfg["unk_token"] = t["unk"]
    named = {t["bos"], t["eos"], t["pad"], t.get("unk")}
    cfg["additional_special_tokens"] = [s for s in t["special"] if s not in named]
    return cfg


def _write_tokenizer(d: SimpleNamespace, twin: Twin, out: Path, max_len: int) -> dict:
    tok = _train_tokenizer(d.tokenizers, tuple(twin.tokens["special"]))
    ids = {s: tok.token_to_id(s) for s in twin.tokens["special"]}
    (out / "tokenizer.json").write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")
    _write_json(out / "tokenizer_config.json", _tokenizer_config(twin, max_len, ids))
    t = twin.tokens
    return {"bos_token_id": ids[t["bos"]], "eos_token_id": ids[t["eos"]], "pad_token_id": ids[t["pad"]],
            "stop_ids": [ids[s] for s in t["stop"]]}


# ---- weights ----

def _tensor_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _fill(torch, name: str, shape: tuple, seed: int, bits: str = "splitmix64", device: str = "cpu"):
    """One bf16 tensor: norm weights 1, other vectors 0, matrices ~N(0, 0.02) (Irwin-Hall of 4).

    Built from integer random bits with exact integer ops and one float32 multiply, so the bytes
    do not depend on the CPU: torch's normal_() takes a vectorised path with approximate log/cos
    on x86 and a scalar one elsewhere. splitmix64 bits are the same on a CUDA device (torch's own
    generators are not: the CPU's is a Mersenne Twister, CUDA's Philox)."""
    out = torch.empty(shape, dtype=torch.bfloat16, device=device)
    if len(shape) == 1:
        return out.fill_(1.0 if "norm" in name else 0.0)
    key = _tensor_seed(seed, name)
    flat = out.view(-1)
    size = min(_CHUNK if device == "cpu" else _CHUNK_GPU, flat.numel())
    ints = torch.empty(size, dtype=torch.int64, device=device)     # buffers reused across chunks
    tmp = torch.empty_like(ints)
    isum = torch.empty(size, dtype=torch.int32, device=device)
    fsum = torch.empty(size, dtype=torch.float32, device=device)
    if bits == "mt19937":
        gen = torch.Generator().manual_seed(key)
    else:
        index = torch.arange(size, dtype=torch.int64, device=device)
    for start in range(0, flat.numel(), size):
        n = min(size, flat.numel() - start)
        if bits == "mt19937":
            b = ints[:n].random_(-(1 << 63), (1 << 63) - 1, generator=gen)
        else:
            b = _splitmix64(torch, torch.add(index[:n], start, out=ints[:n]), key, tmp[:n])
        # four int16 uniforms per draw (their sum does not depend on byte order): mean -2
        parts = b.view(torch.int16).view(n, 4)
        s = isum[:n].copy_(parts[:, 0])
        for i in (1, 2, 3):
            s.add_(parts[:, i])                     # in int32: no overflow
        f = fsum[:n].copy_(s.mul_(2).add_(4))
        flat[start:start + n].copy_(f.mul_(_SCALE))
    return out


def _i64(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


_GOLDEN, _MIX1, _MIX2 = _i64(0x9E3779B97F4A7C15), _i64(0xBF58476D1CE4E5B9), _i64(0x94D049BB133111EB)


def _splitmix64(torch, x, key: int, tmp):
    """splitmix64 of the element indices x (in place): int64 products wrap mod 2**64 on CPU and CUDA
    alike, and >> is arithmetic, so the logical shift masks off the copied sign bits."""
    x.mul_(_GOLDEN).add_(key)
    for shift, mult in ((30, _MIX1), (27, _MIX2), (31, None)):
        torch.bitwise_right_shift(x, shift, out=tmp).bitwise_and_((1 << (64 - shift)) - 1)
        x.bitwise_xor_(tmp)
        if mult is not None:
            x.mul_(mult)
    return x


def _shards(params: list[tuple[str, tuple]]) -> list[list[tuple[str, tuple]]]:
    shards, size = [[]], 0
    for name, shape in params:
        nbytes = 2 * _numel(shape)
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    return shards


def _numel(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _write_weights(d, params, out: Path, seed: int, bits: str, device: str,
                   say: Callable[[str], None]) -> list[str]:
    shards = _shards(params)
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    progress = _Progress(_count(params), say)

    def make(name: str, shape: tuple):
        return _fill(d.torch, name, shape, seed, bits, device).cpu()

    def save(fname: str, shard: list, jobs: list) -> None:
        tensors = {}
        for (name, shape), job in zip(shard, jobs):
            tensors[name] = job.result()
            progress.add(_numel(shape))
        d.safetensors.save_file(tensors, str(out / fname), metadata={"format": "pt"})

    # CPU: one tensor per core (torch's intra-op threads would only contend with those); GPU: one
    # tensor at a time. The next shard is made while this one is written, so at most two are held.
    intra_op = d.torch.get_num_threads()
    d.torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor((os.cpu_count() or 1) if device == "cpu" else 1) as pool:
            pending = None
            for fname, shard in zip(names, shards):
                jobs = [pool.submit(make, n, s) for n, s in shard]
                if pending:
                    save(*pending)
                pending = (fname, shard, jobs)
            save(*pending)
    finally:
        d.torch.set_num_threads(intra_op)
    if len(shards) > 1:
        index = {"metadata": {"total_size": 2 * progress.total},
                 "weight_map": {n: f for f, sh in zip(names, shards) for n, _ in sh}}
        _write_json(out / "model.safetensors.index.json", index)
        names.append("model.safetensors.index.json")
    return names


class _Progress:
    """Says every 10% of the parameters written."""

    def __init__(self, total: int, say: Callable[[str], None]):
        self.total, self.done, self.next_pct, self.t0, self.say = total, 0, 10, time.time(), say

    def add(self, n: int) -> None:
        self.done += n
        if 100 * self.done >= self.next_pct * self.total:
            pct = 100 * self.done // self.total
            self.say(f"weights {pct}% ({self.done / 1e6:.0f}M of {self.total / 1e6:.0f}M params), "
                     f"{time.time() - self.t0:.1f} s")
            self.next_pct = (pct // 10 + 1) * 10


# ---- files ----

def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            h.update(block)
    return h.hexdigest()


_BITS_README = {
    "mt19937": "- weights: matrices ~ N(0, 0.02) (Irwin-Hall sum of four 16-bit uniforms from a CPU "
               "torch.Generator seeded with sha256(f'{seed}:{name}')), norm weights 1.0, stored as bf16",
    "splitmix64": "- weights: matrices ~ N(0, 0.02) (Irwin-Hall sum of the four 16-bit parts of "
                  "splitmix64(element index, key = sha256(f'{seed}:{name}'))), norm weights 1.0, "
                  "stored as bf16; the same bytes whether made on a CPU or a CUDA GPU",
}


def _readme(twin: Twin, seed: int, tiny: bool, nparams: int) -> str:
    cfg = twin.config
    lines = [
        f"# {twin.name} shape twin{' (tiny)' if tiny else ''}",
        "",
        "Random weights: this model produces meaningless text. It has the architecture and the "
        f"size/shape/cost hyper-parameters of `{twin.source_repo}`"
        + (" scaled down for tests" if tiny else "") + ", for running vLLM where no model hub "
        "can be reached. Made by `kit.twins.make_twin` (sleepkit).",
        "",
        f"- architecture: {cfg['architectures'][0]}; parameters: {nparams:,} (bf16); seed: {seed}",
        f"- config.json fields taken from the real config: {', '.join(twin.from_source)}"
        + (f"; then shrunk: {', '.join(f'{k}={v}' for k, v in twin.tiny.items())}" if tiny else ""),
        f"- real config read from: {twin.verified_from}",
        "- differences from the real config.json:",
        *[f"  - {k}: {v}" for k, v in twin.changes.items()],
    ]
    if twin.left_out:
        lines.append(f"- left out: {twin.left_out}")
    lines += [
        f"- tokenizer: a {TOKENIZER_VOCAB}-token byte-level BPE trained on generated text (not the "
        "real tokenizer); token ids at or above "
        f"{TOKENIZER_VOCAB} decode to empty text, so count output tokens from `usage`, not from text",
        f"- chat template: {'ChatML' if twin.chat == 'chatml' else 'Phi-3 (<|user|> ... <|end|>)'}; "
        f"end of turn: {twin.tokens['eos']}",
        _BITS_README[twin.bits],
        "",
    ]
    return "\n".join(lines)


def _write_twin(d, twin: Twin, part: Path, seed: int, tiny: bool, device: str,
                say) -> tuple[dict, int, list]:
    t0 = time.time()
    ids = _write_tokenizer(d, twin, part, twin.config["max_position_embeddings"])
    stop_ids = ids.pop("stop_ids")
    cfg = twin_config(twin.name, tiny, ids)
    _write_json(part / "config.json", cfg)
    _write_json(part / "generation_config.json",
                {"bos_token_id": ids["bos_token_id"], "eos_token_id": stop_ids,
                 "pad_token_id": ids["pad_token_id"]})
    say(f"tokenizer and config written ({time.time() - t0:.1f} s)")
    params = stored_params(cfg)
    nparams = _count(params)
    if not tiny and nparams != twin.params:
        raise RuntimeError(f"{twin.name}: {nparams} parameters, expected {twin.params}")
    say(f"{nparams:,} parameters in {len(params)} tensors, made on {device}")
    weight_files = _write_weights(d, params, part, seed, twin.bits, device, say)
    (part / "README.md").write_text(_readme(twin, seed, tiny, nparams), encoding="utf-8")
    return cfg, nparams, weight_files


def _device(d: SimpleNamespace, twin: Twin, device: str | None) -> str:
    """Where the weights are made: a CUDA GPU if there is one, unless the twin's bits are CPU-only."""
    cuda = d.torch.cuda.is_available()
    if device not in (None, "cpu", "cuda"):
        raise BadInput(f"device {device!r}: choose cpu or cuda")
    if device == "cuda" and not cuda:
        raise BadInput("device cuda: this torch sees no CUDA GPU")
    if twin.bits == "mt19937":
        return "cpu"
    return device or ("cuda" if cuda else "cpu")


def write_twin(name: str, out_dir, seed: int = 0, tiny: bool = False,
               progress: Callable[[str], None] | None = print, device: str | None = None) -> dict:
    """`kit models twin`: make_twin into a new or empty folder (BadInput otherwise, before anything is made),
    then its record, RECORD, beside the files (kit.manifest reads a twin's digest from it)."""
    if Path(out_dir).exists() and any(Path(out_dir).iterdir()):
        raise BadInput(f"{out_dir} is not empty", "remove it or give another --out")
    info = make_twin(name, out_dir, seed=seed, tiny=tiny, progress=progress, device=device)
    (Path(out_dir) / RECORD).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def make_twin(name: str, out_dir, seed: int = 0, tiny: bool = False,
              progress: Callable[[str], None] | None = print, device: str | None = None) -> dict:
    """Write a twin into out_dir (which must not exist or be empty); return what was written.

    device: "cpu" or "cuda" (default: cuda if torch sees a GPU). The bytes are the same either way."""
    twin = get_twin(name)
    d = _deps()
    device = _device(d, twin, device)
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; remove it or choose another directory")
    say = (lambda msg: progress(f"{name}: {msg}")) if progress else (lambda msg: None)
    t0 = time.time()
    part = out.with_name(out.name + ".partial")     # out appears only once complete
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    try:
        cfg, nparams, weight_files = _write_twin(d, twin, part, seed, tiny, device, say)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    part.rename(out)
    paths = sorted(out.iterdir())
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:   # hashlib lets go of the GIL
        sums = list(pool.map(_sha256, paths))
    files = {f.name: {"bytes": f.stat().st_size, "sha256": h} for f, h in zip(paths, sums)}
    digest = hashlib.sha256("".join(f"{v['sha256']}  {k}\n" for k, v in files.items()).encode())
    info = {
        "name": name, "out_dir": str(out), "architecture": cfg["architectures"][0],
        "model_type": cfg["model_type"], "params": nparams,
        "bytes": sum(v["bytes"] for v in files.values()),
        "weights_bytes": sum(files[f]["bytes"] for f in weight_files if f.endswith(".safetensors")),
        "files": files, "digest": digest.hexdigest(), "seed": seed, "tiny": tiny,
        "bits": twin.bits, "device": device,
        "source": {"repo": twin.source_repo, "verified_from": twin.verified_from,
                   "fields": list(twin.from_source), "changes": twin.changes,
                   "tiny_overrides": twin.tiny if tiny else {}},
        "left_out": twin.left_out,
        "versions": {m: getattr(d, m).__version__ for m in ("torch", "transformers", "tokenizers")},
        "seconds": round(time.time() - t0, 2),
    }
    say(f"done in {info['seconds']} s: {info['bytes'] / 1e9:.2f} GB, digest {info['digest'][:16]}")
    return info
