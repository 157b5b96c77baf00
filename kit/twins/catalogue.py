"""The catalogue of twins: which model each copies, what it takes from the real config.json and what it
changes, and the config.json a twin is written with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kit.twins.configs import PHI3_MINI, QWEN3_0_6B, QWEN3_CODER_30B_A3B, QWEN3_SIZES, qwen3_dense


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
    config = qwen3_dense(*sizes)
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
        config=QWEN3_0_6B,
        tiny=_QWEN3_TINY,
        chat="chatml",
        params=596_049_920,
        from_source=tuple(QWEN3_0_6B),
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
        config=PHI3_MINI,
        tiny={"vocab_size": 4096, "hidden_size": 192, "intermediate_size": 256, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2},   # head_dim stays 96: 48 factors
        chat="phi3",
        params=3_821_079_552,
        from_source=tuple(k for k in PHI3_MINI if k not in ("architectures", "model_type")),
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
    **{name: _qwen3_twin(name, sizes, params) for name, (sizes, params) in QWEN3_SIZES.items()},
    "qwen3-coder-30b-a3b": Twin(
        name="qwen3-coder-30b-a3b",
        source_repo="Qwen/Qwen3-Coder-30B-A3B-Instruct",
        config=QWEN3_CODER_30B_A3B,
        tiny={**_QWEN3_TINY, "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2},
        chat="chatml",
        params=30_532_122_624,
        from_source=tuple(QWEN3_CODER_30B_A3B),
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
