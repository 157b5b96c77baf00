"""kit.twins: shape twins of Qwen3-0.6B to -32B, Qwen3-Coder-30B-A3B and Phi-3-mini (of Phi-3-vision).

The tests marked `twins` need the [twins] extra (torch, transformers, tokenizers, safetensors), like the
Docker tests need an engine: without it they fail under CI (with the install hint) and are skipped
elsewhere. The shape checks are arithmetic on the configs and run in the unit tier.
"""
import os

import json
import sys

import pytest

from kit import twins
from kit.twins import weights, write
from kit.errors import BadInput

needs_torch = pytest.mark.twins

FULL_PARAMS = {"qwen3-0.6b": 596_049_920, "phi-3-mini": 3_821_079_552, "qwen3-1.7b": 1_720_574_976,
               "qwen3-4b": 4_022_468_096, "qwen3-8b": 8_190_735_360, "qwen3-14b": 14_768_307_200,
               "qwen3-32b": 32_762_123_264, "qwen3-coder-30b-a3b": 30_532_122_624}
# The model cards' "Number of Parameters" and "(Non-Embedding)" (MoE: total and activated), in 1e9.
PUBLISHED = {"qwen3-0.6b": (0.6, 0.44), "qwen3-1.7b": (1.7, 1.4), "qwen3-4b": (4.0, 3.6),
             "qwen3-8b": (8.2, 6.95), "qwen3-14b": (14.8, 13.2), "qwen3-32b": (32.8, 31.2),
             "qwen3-coder-30b-a3b": (30.5, 3.3)}
ROPE_TYPE = {name: "longrope" if name == "phi-3-mini" else "default" for name in twins.TWINS}
NAMES = sorted(twins.TWINS)


@pytest.fixture(scope="module")
def deps():
    try:
        return write._deps()
    except twins.TwinDependencyError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {e}", pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def built(deps, tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    return {name: twins.make_twin(name, root / name, seed=0, tiny=True, progress=None)
            for name in NAMES}


def _rope_type(hf_config) -> str:
    rope = getattr(hf_config, "rope_parameters", None) or getattr(hf_config, "rope_scaling", None)
    return (rope or {}).get("rope_type") or (rope or {}).get("type") or "default"


def test_registry_holds_the_real_shapes():
    assert NAMES == ["phi-3-mini", "qwen3-0.6b", "qwen3-1.7b", "qwen3-14b", "qwen3-32b", "qwen3-4b",
                     "qwen3-8b", "qwen3-coder-30b-a3b"]
    q = twins.TWINS["qwen3-0.6b"].config
    assert (q["architectures"], q["vocab_size"], q["hidden_size"], q["intermediate_size"]) == (
        ["Qwen3ForCausalLM"], 151936, 1024, 3072)
    assert (q["num_hidden_layers"], q["num_attention_heads"], q["num_key_value_heads"], q["head_dim"]) == (
        28, 16, 8, 128)
    assert (q["max_position_embeddings"], q["rope_theta"], q["rope_scaling"], q["tie_word_embeddings"]) == (
        40960, 1e6, None, True)
    assert (q["rms_norm_eps"], q["hidden_act"], q["torch_dtype"], q["attention_bias"]) == (
        1e-6, "silu", "bfloat16", False)
    p = twins.TWINS["phi-3-mini"].config
    assert (p["architectures"], p["vocab_size"], p["hidden_size"], p["intermediate_size"]) == (
        ["Phi3ForCausalLM"], 32064, 3072, 8192)
    assert (p["num_hidden_layers"], p["num_attention_heads"], p["num_key_value_heads"]) == (32, 32, 32)
    assert (p["max_position_embeddings"], p["original_max_position_embeddings"], p["rope_theta"]) == (
        131072, 4096, 10000.0)
    assert (p["rms_norm_eps"], p["tie_word_embeddings"], p["sliding_window"], p["torch_dtype"]) == (
        1e-5, False, 131072, "bfloat16")
    rope = p["rope_scaling"]
    assert rope["type"] == "longrope"
    assert len(rope["short_factor"]) == len(rope["long_factor"]) == 48
    assert rope["long_factor"][0] == 1.0299999713897705 and rope["long_factor"][-1] == 64.81001281738281
    assert rope["short_factor"][0] == 1.05 and rope["short_factor"][-1] == 3.049999999999997
    assert "vision" in twins.TWINS["phi-3-mini"].left_out
    listed = {t["name"]: t for t in twins.list_twins()}
    assert {n: t["params"] for n, t in listed.items()} == FULL_PARAMS
    dense = {n: twins.TWINS[n].config for n in ("qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b",
                                                 "qwen3-32b")}
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "tie_word_embeddings")
    assert {n: tuple(c[k] for k in keys) for n, c in dense.items()} == {
        "qwen3-1.7b": (2048, 6144, 28, 16, 8, 128, True), "qwen3-4b": (2560, 9728, 36, 32, 8, 128, True),
        "qwen3-8b": (4096, 12288, 36, 32, 8, 128, False),
        "qwen3-14b": (5120, 17408, 40, 40, 8, 128, False),
        "qwen3-32b": (5120, 25600, 64, 64, 8, 128, False)}
    assert all((c["vocab_size"], c["max_position_embeddings"], c["rope_theta"], c["architectures"]) == (
        151936, 40960, 1e6, ["Qwen3ForCausalLM"]) for c in dense.values())
    m = twins.TWINS["qwen3-coder-30b-a3b"].config
    assert (m["architectures"], m["hidden_size"], m["num_hidden_layers"], m["num_attention_heads"],
            m["num_key_value_heads"], m["head_dim"]) == (["Qwen3MoeForCausalLM"], 2048, 48, 32, 4, 128)
    assert (m["num_experts"], m["num_experts_per_tok"], m["moe_intermediate_size"], m["decoder_sparse_step"],
            m["mlp_only_layers"], m["norm_topk_prob"]) == (128, 8, 768, 1, [], True)
    assert (m["max_position_embeddings"], m["rope_theta"], m["tie_word_embeddings"], m["vocab_size"]) == (
        262144, 1e7, False, 151936)
    assert {n for n, t in twins.TWINS.items() if t.bits == "mt19937"} == {"qwen3-0.6b", "phi-3-mini"}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_from_the_config_matches_the_published_one(name):
    """Arithmetic on the config (nothing generated): the registry's count and the model card's."""
    count = twins.count_params(name)
    assert count == FULL_PARAMS[name] == twins.TWINS[name].params
    if name not in PUBLISHED:
        return
    cfg = twins.twin_config(name)
    total, second = PUBLISHED[name]
    embedding = cfg["vocab_size"] * cfg["hidden_size"] * (1 if cfg["tie_word_embeddings"] else 2)
    other = twins.active_params(name) if "num_experts" in cfg else count - embedding
    assert count == pytest.approx(total * 1e9, rel=0.02)        # cards round to 0.1e9
    assert other == pytest.approx(second * 1e9, rel=0.02)


def test_counts_that_others_publish():
    # counting the tied lm_head a second time gives the 2.03B quoted for Qwen3-1.7B
    cfg = twins.twin_config("qwen3-1.7b")
    with_lm_head = twins.count_params("qwen3-1.7b") + cfg["vocab_size"] * cfg["hidden_size"]
    assert with_lm_head == pytest.approx(2.03e9, abs=0.005e9)
    # Qwen3-Coder-30B-A3B-Instruct's model.safetensors.index.json: total_size 61064245248 (bf16)
    assert 2 * twins.count_params("qwen3-coder-30b-a3b") == 61_064_245_248
    params = dict(twins.stored_params(twins.twin_config("qwen3-coder-30b-a3b")))
    assert params["model.layers.47.mlp.experts.127.down_proj.weight"] == (2048, 768)
    assert params["model.layers.0.mlp.gate.weight"] == (128, 2048)
    assert sum("experts" in n for n in params) == 48 * 128 * 3


def test_missing_dependency_is_an_error_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)        # makes `import torch` fail
    with pytest.raises(twins.TwinDependencyError, match=r"pip install '\.\[twins\]'"):
        twins.make_twin("qwen3-0.6b", tmp_path / "q", tiny=True, progress=None)
    assert not (tmp_path / "q").exists()


def _meta_params(d, cfg: dict) -> list[tuple[str, tuple]]:
    """(name, shape) of every parameter of the model transformers builds on the meta device."""
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
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def _fuse_experts(params: list, cfg: dict) -> list:
    """The hub's one-tensor-per-expert list as transformers 5 holds it: experts.gate_up_proj (E, 2I, H)
    and experts.down_proj (E, H, I) in place of the first expert, after the router."""
    out, experts = [], cfg["num_experts"]
    for name, shape in params:
        if ".mlp.experts." not in name:
            out.append((name, shape))
        elif name.endswith(".experts.0.gate_proj.weight"):
            p = name.split("experts.")[0] + "experts."
            out += [(p + "gate_up_proj", (experts, 2 * shape[0], shape[1])),
                    (p + "down_proj", (experts, shape[1], shape[0]))]
    return out


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_stored_tensors_are_the_ones_transformers_builds(deps, name):
    """Same names, shapes and order as the model on the meta device (the order decides the shards, so
    phi-3-mini's bytes stay those of the meta listing it was first made from)."""
    cfg = twins.twin_config(name)
    ours, meta = twins.stored_params(cfg), _meta_params(deps, cfg)
    if any(n.endswith("experts.gate_up_proj") for n, _ in meta):     # transformers >= 5
        ours, meta = sorted(_fuse_experts(ours, cfg), key=_by_layer), sorted(meta, key=_by_layer)
    assert ours == meta


def _by_layer(param: tuple) -> tuple:
    name = param[0]
    return (int(name.split(".")[2]) if name.startswith("model.layers.") else -1, name)


M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """Reference splitmix64 output for state x, in Python integers."""
    x &= M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


@needs_torch
def test_splitmix64_in_torch_is_exact(deps):
    torch = deps.torch
    key = weights._tensor_seed(0, "model.layers.0.mlp.up_proj.weight")
    index = [0, 1, 2, 12345, (1 << 33) + 7, (1 << 40) - 1]
    x = torch.tensor(index, dtype=torch.int64)
    got = weights._splitmix64(torch, x, key, torch.empty_like(x))
    assert [v & M64 for v in got.tolist()] == [
        _splitmix64(i * 0x9E3779B97F4A7C15 + key) for i in index]


@needs_torch
def test_weights_do_not_depend_on_the_chunk_size(deps, monkeypatch):
    torch = deps.torch
    whole = weights._fill(torch, "w", (301, 77), 5)
    monkeypatch.setattr(weights, "_CHUNK", 1000)                # many chunks, a short last one
    assert torch.equal(weights._fill(torch, "w", (301, 77), 5), whole)
    assert not torch.equal(weights._fill(torch, "w2", (301, 77), 5), whole)


@needs_torch
def test_cuda_makes_the_bytes_the_cpu_makes(deps, monkeypatch, tmp_path):
    torch = deps.torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    monkeypatch.setattr(weights, "_CHUNK_GPU", 1 << 20)         # several chunks on the GPU too
    for shape in [(64, 32), (3001, 1024)]:
        cpu = weights._fill(torch, "w", shape, 0)
        assert torch.equal(weights._fill(torch, "w", shape, 0, device="cuda").cpu(), cpu)
    made = {dev: twins.make_twin("qwen3-coder-30b-a3b", tmp_path / dev, tiny=True, progress=None,
                                 device=dev) for dev in ("cpu", "cuda")}
    assert made["cuda"]["device"] == "cuda" and made["cuda"]["digest"] == made["cpu"]["digest"]
    legacy = twins.make_twin("qwen3-0.6b", tmp_path / "legacy", tiny=True, progress=None, device="cuda")
    assert legacy["device"] == "cpu"                             # its recorded bits are the CPU's


@needs_torch
def test_a_device_that_cannot_make_the_weights_is_refused(deps, tmp_path):
    with pytest.raises(BadInput, match="choose cpu or cuda"):
        twins.make_twin("qwen3-1.7b", tmp_path / "x", tiny=True, progress=None, device="tpu")
    if not deps.torch.cuda.is_available():
        with pytest.raises(BadInput, match="no CUDA GPU"):
            twins.make_twin("qwen3-1.7b", tmp_path / "x", tiny=True, progress=None, device="cuda")
    assert not list(tmp_path.iterdir())


@needs_torch
def test_large_twins_are_written_in_shards_with_an_index(deps, monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "_SHARD_BYTES", 600_000)      # the tiny MoE is 1.35 MB
    info = twins.make_twin("qwen3-coder-30b-a3b", tmp_path / "m", tiny=True, progress=None)
    shards = sorted(f for f in info["files"] if f.endswith(".safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert all(info["files"][f]["bytes"] < 600_000 + 50_000 for f in shards)     # + header
    index = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 2 * info["params"] < info["weights_bytes"]   # + headers
    stored = twins.stored_params(twins.twin_config("qwen3-coder-30b-a3b", tiny=True))
    assert sorted(index["weight_map"]) == sorted(n for n, _ in stored)
    assert set(index["weight_map"].values()) == set(shards)
    model = deps.transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert sum(p.numel() for p in model.parameters()) == info["params"]


@needs_torch
def test_moe_twin_loads_its_experts(built, deps):
    out = built["qwen3-coder-30b-a3b"]["out_dir"]
    tensors = deps.safetensors.load_file(f"{out}/model.safetensors")
    model = deps.transformers.AutoModelForCausalLM.from_pretrained(out)
    params = dict(model.named_parameters())
    up = tensors["model.layers.1.mlp.experts.5.up_proj.weight"]
    if "model.layers.1.mlp.experts.gate_up_proj" in params:       # transformers >= 5 fuses them
        loaded = params["model.layers.1.mlp.experts.gate_up_proj"][5][up.shape[0]:]
    else:
        loaded = params["model.layers.1.mlp.experts.5.up_proj.weight"]
    assert deps.torch.equal(loaded.detach().to(up.dtype), up)


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_files_and_config(built, deps, name):
    info, out = built[name], built[name]["out_dir"]
    files = set(info["files"])
    assert files == {"README.md", "config.json", "generation_config.json", "model.safetensors",
                     "tokenizer.json", "tokenizer_config.json"}
    cfg = json.loads(open(f"{out}/config.json").read())
    ids = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    assert cfg == twins.twin_config(name, tiny=True, token_ids=ids)
    assert cfg["architectures"] == twins.TWINS[name].config["architectures"] == [info["architecture"]]
    assert cfg["rope_parameters"]["rope_type"] == ROPE_TYPE[name]
    hf = deps.transformers.AutoConfig.from_pretrained(out)
    assert _rope_type(hf) == ROPE_TYPE[name]
    assert hf.architectures == cfg["architectures"]
    gen = json.loads(open(f"{out}/generation_config.json").read())
    assert cfg["eos_token_id"] in gen["eos_token_id"]
    readme = open(f"{out}/README.md").read()
    assert twins.TWINS[name].source_repo in readme and "Random weights" in readme
    assert info["tiny"] is True and info["seed"] == 0 and len(info["digest"]) == 64


@needs_torch
def test_phi_twin_says_the_vision_tower_is_left_out(built):
    info = built["phi-3-mini"]
    assert "vision tower" in info["left_out"]
    assert "vision tower" in open(f"{info['out_dir']}/README.md").read()


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_other_seed_other_weights(built, tmp_path, name):
    again = twins.make_twin(name, tmp_path / "again", seed=0, tiny=True, progress=None)
    assert again["files"] == built[name]["files"] and again["digest"] == built[name]["digest"]
    other = twins.make_twin(name, tmp_path / "other", seed=1, tiny=True, progress=None)
    assert other["digest"] != built[name]["digest"]
    assert other["files"]["model.safetensors"] != built[name]["files"]["model.safetensors"]
    assert other["files"]["tokenizer.json"] == built[name]["files"]["tokenizer.json"]


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_weights_norms_one_matrices_small(built, deps, name):
    torch = deps.torch
    tensors = deps.safetensors.load_file(f"{built[name]['out_dir']}/model.safetensors")
    assert sum(t.numel() for t in tensors.values()) == built[name]["params"]
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    norms = [t for n, t in tensors.items() if "norm" in n]
    assert norms and all(bool((t == 1).all()) for t in norms)
    embed = tensors["model.embed_tokens.weight"].float()
    assert abs(embed.std().item() - 0.02) < 0.001 and abs(embed.mean().item()) < 0.001


@needs_torch
def test_output_dir_must_be_empty(deps, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        twins.make_twin("qwen3-0.6b", tmp_path, tiny=True, progress=None)


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_loads_with_transformers_and_generates(built, deps, name):
    out = built[name]["out_dir"]
    tok = deps.transformers.AutoTokenizer.from_pretrained(out)
    model = deps.transformers.AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == built[name]["params"]
    inputs = tok("The server went to sleep", return_tensors="pt")
    with deps.torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert ids.shape[1] == inputs["input_ids"].shape[1] + 3


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_tokenizer_round_trip_and_chat_template(built, deps, name):
    tok = deps.transformers.AutoTokenizer.from_pretrained(built[name]["out_dir"])
    assert len(tok) == twins.TOKENIZER_VOCAB
    text = "Wake up at 07:30, reload weights; ünïcode ✓ and\nnew lines."
    assert tok.decode(tok(text)["input_ids"]) == text
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    rendered = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    expected = {
        "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                  "<|im_start|>assistant\n",
        "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\n",
    }[twins.TWINS[name].chat]
    assert rendered == expected
    assert tok.eos_token == twins.TWINS[name].tokens["eos"]
    special = tok.convert_tokens_to_ids(twins.TWINS[name].tokens["eos"])
    assert tok(rendered)["input_ids"].count(special) == 2
