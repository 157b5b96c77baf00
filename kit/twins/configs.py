"""The real models' config.json contents, as published (the comments say where each was read).

A twin's config.json copies these fields; kit.twins.catalogue says which, and how the twin differs.
"""

# Qwen/Qwen3-0.6B config.json (726 bytes, transformers_version 4.51.0).
QWEN3_0_6B = {
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


def qwen3_dense(hidden: int, intermediate: int, layers: int, heads: int, tie: bool) -> dict:
    """A dense Qwen3 config.json: the fields all Qwen3 hub configs share (those of 0.6B: 8 KV heads,
    head_dim 128, 40960 positions, rope_theta 1e6, vocab 151936) and one size's own fields."""
    return {**QWEN3_0_6B, "hidden_size": hidden, "intermediate_size": intermediate,
            "num_hidden_layers": layers, "max_window_layers": layers, "num_attention_heads": heads,
            "tie_word_embeddings": tie}


# Sizes of Qwen/Qwen3-{1.7B,4B,8B,14B,32B} config.json (all transformers_version 4.51.x). Read in:
# 4B, 8B, 14B, 32B: citsjtu2020/LLM-Prof@8434c8d1 sglang/Model_Config.md, which quotes the configs whole;
# 1.7B: mephisto1484/Neko-LoRA-Build-Your-AI-Catgirl@1d5d0234 Qwen3-1.7B/config.json (a transformers 4.57
# re-save: it adds layer_types and dtype float16, the sizes are the hub's). See Twin.verified_from.
QWEN3_SIZES = {   # name: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, tied;
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
QWEN3_CODER_30B_A3B = {
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
PHI3_MINI = {
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
