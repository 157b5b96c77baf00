"""Shape twins: Hugging Face model directories with random weights and a real model's shape.

A twin has the architecture and every size, shape and cost hyper-parameter of a public model
(config.json fields copied from the real config), random bf16 weights and a small byte-level BPE
tokenizer. It exists so that vLLM can be started, put to sleep and woken on GPU hosts that cannot
reach a model hub; its output is meaningless text.

Same (name, seed, tiny) -> byte-identical files on any machine: the weights are derived from integer
random bits on the CPU with exact arithmetic, the JSON files are written here (not by transformers,
whose output carries its version), and nothing depends on the device, thread count or hash seed.
torch, transformers, tokenizers and safetensors are an optional extra: `pip install '.[twins]'`.
"""

from __future__ import annotations

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

INSTALL_HINT = "pip install '.[twins]' (or .venv/bin/pip install -e '.[twins]')"


class TwinDependencyError(RuntimeError):
    """torch, transformers, tokenizers or safetensors is not installed."""


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

TWINS: dict[str, Twin] = {
    "qwen3-0.6b": Twin(
        name="qwen3-0.6b",
        source_repo="Qwen/Qwen3-0.6B",
        config=_QWEN3_0_6B,
        tiny={"vocab_size": 4096, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "max_window_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32},
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
        tokens={"special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": "<|endoftext|>",
                "eos": "<|im_end|>", "pad": "<|endoftext|>", "stop": ["<|im_end|>", "<|endoftext|>"]},
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
_CHUNK = 1 << 22              # elements generated at a time per tensor
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


def _meta_params(d: SimpleNamespace, cfg: dict) -> list[tuple[str, tuple]]:
    """(name, shape) of every stored parameter, from the model built on the meta device."""
    fields = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures")}
    log = d.transformers.logging
    verbosity = log.get_verbosity()
    log.set_verbosity_error()       # e.g. its advice to rewrite Phi-3's real rope config
    try:
        hf_cfg = d.transformers.AutoConfig.for_model(cfg["model_type"], **fields)
        with d.torch.device("meta"):
            model = d.transformers.AutoModelForCausalLM.from_config(hf_cfg)
    finally:
        log.set_verbosity(verbosity)
    # named_parameters() lists a tied lm_head once, as model.embed_tokens.weight
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def count_params(name: str, tiny: bool = False) -> int:
    """Parameter count of a twin, from shapes on the meta device (nothing is allocated)."""
    return sum(_numel(shape) for _, shape in _meta_params(_deps(), twin_config(name, tiny)))


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


def _train_tokenizer(d: SimpleNamespace, specials: list[str]):
    tk = d.tokenizers
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB, special_tokens=specials, show_progress=False,
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
    tok = _train_tokenizer(d, twin.tokens["special"])
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


def _fill(torch, name: str, shape: tuple, seed: int):
    """One bf16 tensor: norm weights 1, other vectors 0, matrices ~N(0, 0.02) (Irwin-Hall of 4).

    Built from integer random bits with exact integer ops and one float32 multiply, so the bytes
    do not depend on the CPU: torch's normal_() takes a vectorised path with approximate log/cos
    on x86 and a scalar one elsewhere."""
    out = torch.empty(shape, dtype=torch.bfloat16)
    if len(shape) == 1:
        return out.fill_(1.0 if "norm" in name else 0.0)
    gen = torch.Generator().manual_seed(_tensor_seed(seed, name))
    flat = out.view(-1)
    size = min(_CHUNK, flat.numel())
    bits = torch.empty(size, dtype=torch.int64)     # buffers reused across chunks
    isum = torch.empty(size, dtype=torch.int32)
    fsum = torch.empty(size, dtype=torch.float32)
    for start in range(0, flat.numel(), size):
        n = min(size, flat.numel() - start)
        b = bits[:n].random_(-(1 << 63), (1 << 63) - 1, generator=gen)
        # four int16 uniforms per draw (their sum does not depend on byte order): mean -2
        parts = b.view(torch.int16).view(n, 4)
        s = isum[:n].copy_(parts[:, 0])
        for i in (1, 2, 3):
            s.add_(parts[:, i])                     # in int32: no overflow
        f = fsum[:n].copy_(s.mul_(2).add_(4))
        flat[start:start + n].copy_(f.mul_(_SCALE))
    return out


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


def _write_weights(d, params, out: Path, seed: int, say: Callable[[str], None]) -> list[str]:
    shards = _shards(params)
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    total, done, next_pct, t0 = sum(_numel(s) for _, s in params), 0, 10, time.time()
    # one tensor per core; torch's intra-op threads would only contend with those
    intra_op = d.torch.get_num_threads()
    d.torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for fname, shard in zip(names, shards):
                tensors = {}
                jobs = [pool.submit(_fill, d.torch, n, s, seed) for n, s in shard]
                for (name, shape), job in zip(shard, jobs):
                    tensors[name] = job.result()
                    done += _numel(shape)
                    if 100 * done >= next_pct * total:
                        pct = 100 * done // total
                        say(f"weights {pct}% ({done / 1e6:.0f}M of {total / 1e6:.0f}M params), "
                            f"{time.time() - t0:.1f} s")
                        next_pct = (pct // 10 + 1) * 10
                d.safetensors.save_file(tensors, str(out / fname), metadata={"format": "pt"})
                del tensors
    finally:
        d.torch.set_num_threads(intra_op)
    if len(shards) > 1:
        index = {"metadata": {"total_size": 2 * total},
                 "weight_map": {n: f for f, sh in zip(names, shards) for n, _ in sh}}
        _write_json(out / "model.safetensors.index.json", index)
        names.append("model.safetensors.index.json")
    return names


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
        "- weights: matrices ~ N(0, 0.02) (Irwin-Hall sum of four 16-bit uniforms from a CPU "
        "torch.Generator seeded with sha256(f'{seed}:{name}')), norm weights 1.0, stored as bf16",
        "",
    ]
    return "\n".join(lines)


def _write_twin(d, twin: Twin, part: Path, seed: int, tiny: bool, say) -> tuple[dict, int, list]:
    t0 = time.time()
    ids = _write_tokenizer(d, twin, part, twin.config["max_position_embeddings"])
    stop_ids = ids.pop("stop_ids")
    cfg = twin_config(twin.name, tiny, ids)
    _write_json(part / "config.json", cfg)
    _write_json(part / "generation_config.json",
                {"bos_token_id": ids["bos_token_id"], "eos_token_id": stop_ids,
                 "pad_token_id": ids["pad_token_id"]})
    say(f"tokenizer and config written ({time.time() - t0:.1f} s)")
    params = _meta_params(d, cfg)
    nparams = sum(_numel(s) for _, s in params)
    if not tiny and nparams != twin.params:
        raise RuntimeError(f"{twin.name}: {nparams} parameters, expected {twin.params}")
    say(f"{nparams:,} parameters in {len(params)} tensors")
    weight_files = _write_weights(d, params, part, seed, say)
    (part / "README.md").write_text(_readme(twin, seed, tiny, nparams), encoding="utf-8")
    return cfg, nparams, weight_files


def make_twin(name: str, out_dir, seed: int = 0, tiny: bool = False,
              progress: Callable[[str], None] | None = print) -> dict:
    """Write a twin into out_dir (which must not exist or be empty); return what was written."""
    twin = get_twin(name)
    d = _deps()
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; remove it or choose another directory")
    say = (lambda msg: progress(f"{name}: {msg}")) if progress else (lambda msg: None)
    t0 = time.time()
    part = out.with_name(out.name + ".partial")     # out appears only once complete
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    try:
        cfg, nparams, weight_files = _write_twin(d, twin, part, seed, tiny, say)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    part.rename(out)
    files = {f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(out.iterdir())}
    digest = hashlib.sha256("".join(f"{v['sha256']}  {k}\n" for k, v in files.items()).encode())
    info = {
        "name": name, "out_dir": str(out), "architecture": cfg["architectures"][0],
        "model_type": cfg["model_type"], "params": nparams,
        "bytes": sum(v["bytes"] for v in files.values()),
        "weights_bytes": sum(files[f]["bytes"] for f in weight_files if f.endswith(".safetensors")),
        "files": files, "digest": digest.hexdigest(), "seed": seed, "tiny": tiny,
        "source": {"repo": twin.source_repo, "verified_from": twin.verified_from,
                   "fields": list(twin.from_source), "changes": twin.changes,
                   "tiny_overrides": twin.tiny if tiny else {}},
        "left_out": twin.left_out,
        "versions": {m: getattr(d, m).__version__ for m in ("torch", "transformers", "tokenizers")},
        "seconds": round(time.time() - t0, 2),
    }
    say(f"done in {info['seconds']} s: {info['bytes'] / 1e9:.2f} GB, digest {info['digest'][:16]}")
    return info
