"""kit.twins: shape twins of Qwen3-0.6B and Phi-3-mini (of Phi-3-vision-128k-instruct).

These tests need the [twins] extra (torch, transformers, tokenizers, safetensors), like the Docker tests
need an engine: without it they fail under CI (with the install hint) and are skipped elsewhere.
"""
import os

import json
import sys

import pytest

from kit import twins

pytestmark = pytest.mark.twins

FULL_PARAMS = {"qwen3-0.6b": 596_049_920, "phi-3-mini": 3_821_079_552}
ROPE_TYPE = {"qwen3-0.6b": "default", "phi-3-mini": "longrope"}
NAMES = sorted(twins.TWINS)


@pytest.fixture(scope="module")
def deps():
    try:
        return twins._deps()
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
    assert NAMES == ["phi-3-mini", "qwen3-0.6b"]
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


def test_missing_dependency_is_an_error_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)        # makes `import torch` fail
    with pytest.raises(twins.TwinDependencyError, match=r"pip install '\.\[twins\]'"):
        twins.make_twin("qwen3-0.6b", tmp_path / "q", tiny=True, progress=None)
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("name", NAMES)
def test_full_size_parameter_count_on_meta_device(deps, name):
    assert twins.count_params(name) == FULL_PARAMS[name] == twins.TWINS[name].params


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


def test_phi_twin_says_the_vision_tower_is_left_out(built):
    info = built["phi-3-mini"]
    assert "vision tower" in info["left_out"]
    assert "vision tower" in open(f"{info['out_dir']}/README.md").read()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_other_seed_other_weights(built, tmp_path, name):
    again = twins.make_twin(name, tmp_path / "again", seed=0, tiny=True, progress=None)
    assert again["files"] == built[name]["files"] and again["digest"] == built[name]["digest"]
    other = twins.make_twin(name, tmp_path / "other", seed=1, tiny=True, progress=None)
    assert other["digest"] != built[name]["digest"]
    assert other["files"]["model.safetensors"] != built[name]["files"]["model.safetensors"]
    assert other["files"]["tokenizer.json"] == built[name]["files"]["tokenizer.json"]


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


def test_output_dir_must_be_empty(deps, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        twins.make_twin("qwen3-0.6b", tmp_path, tiny=True, progress=None)


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


@pytest.mark.parametrize("name", NAMES)
def test_tokenizer_round_trip_and_chat_template(built, deps, name):
    tok = deps.transformers.AutoTokenizer.from_pretrained(built[name]["out_dir"])
    assert len(tok) == twins.TOKENIZER_VOCAB
    text = "Wake up at 07:30, reload weights; ünïcode ✓ and\nnew lines."
    assert tok.decode(tok(text)["input_ids"]) == text
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    rendered = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    expected = {
        "qwen3-0.6b": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                      "<|im_start|>assistant\n",
        "phi-3-mini": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\n",
    }[name]
    assert rendered == expected
    assert tok.eos_token == twins.TWINS[name].tokens["eos"]
    special = tok.convert_tokens_to_ids(twins.TWINS[name].tokens["eos"])
    assert tok(rendered)["input_ids"].count(special) == 2
