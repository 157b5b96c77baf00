"""Writing a twin: its config, tokenizer and weight files, README and record (sizes and sha256 of every
file, one digest over them all), into a folder that appears only once complete."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from kit.errors import BadInput, TwinDependencyError
from kit.twins.catalogue import Twin, get_twin, twin_config
from kit.twins.params import stored_params, total_numel
from kit.twins.tokenizer import TOKENIZER_VOCAB, make_tokenizer
from kit.twins.weights import write_weights

INSTALL_HINT = "pip install '.[twins]' (or .venv/bin/pip install -e '.[twins]')"
RECORD = "sleepkit-twin.json"     # what write_twin made, beside the files


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


def _write_configs(d: SimpleNamespace, twin: Twin, part: Path, tiny: bool) -> dict:
    """tokenizer.json, tokenizer_config.json, config.json and generation_config.json; returns the config."""
    tokenizer_json, tokenizer_config, ids = make_tokenizer(d.tokenizers, twin, twin.config["max_position_embeddings"])
    (part / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    _write_json(part / "tokenizer_config.json", tokenizer_config)
    stop_ids = ids.pop("stop_ids")
    cfg = twin_config(twin.name, tiny, ids)
    _write_json(part / "config.json", cfg)
    _write_json(part / "generation_config.json",
                {"bos_token_id": ids["bos_token_id"], "eos_token_id": stop_ids,
                 "pad_token_id": ids["pad_token_id"]})
    return cfg


def _write_twin(d, twin: Twin, part: Path, seed: int, tiny: bool, device: str,
                say) -> tuple[dict, int, list]:
    t0 = time.time()
    cfg = _write_configs(d, twin, part, tiny)
    say(f"tokenizer and config written ({time.time() - t0:.1f} s)")
    params = stored_params(cfg)
    nparams = total_numel(params)
    if not tiny and nparams != twin.params:
        raise RuntimeError(f"{twin.name}: {nparams} parameters, expected {twin.params}")
    say(f"{nparams:,} parameters in {len(params)} tensors, made on {device}")
    weight_files, index = write_weights(d, params, part, seed, twin.bits, device, say)
    if index is not None:
        _write_json(part / "model.safetensors.index.json", index)
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
    info = {
        "name": name, "out_dir": str(out), "architecture": cfg["architectures"][0],
        "model_type": cfg["model_type"], "params": nparams, **_checksums(out, weight_files),
        "seed": seed, "tiny": tiny, "bits": twin.bits, "device": device,
        "source": {"repo": twin.source_repo, "verified_from": twin.verified_from,
                   "fields": list(twin.from_source), "changes": twin.changes,
                   "tiny_overrides": twin.tiny if tiny else {}},
        "left_out": twin.left_out,
        "versions": {m: getattr(d, m).__version__ for m in ("torch", "transformers", "tokenizers")},
        "seconds": round(time.time() - t0, 2),
    }
    say(f"done in {info['seconds']} s: {info['bytes'] / 1e9:.2f} GB, digest {info['digest'][:16]}")
    return info


def _checksums(out: Path, weight_files: list[str]) -> dict:
    """Bytes and sha256 of every file in out, and one digest over them (as sha256sum lists them)."""
    paths = sorted(out.iterdir())
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:   # hashlib lets go of the GIL
        sums = list(pool.map(_sha256, paths))
    files = {f.name: {"bytes": f.stat().st_size, "sha256": h} for f, h in zip(paths, sums)}
    digest = hashlib.sha256("".join(f"{v['sha256']}  {k}\n" for k, v in files.items()).encode())
    return {"bytes": sum(v["bytes"] for v in files.values()),
            "weights_bytes": sum(files[f]["bytes"] for f in weight_files if f.endswith(".safetensors")),
            "files": files, "digest": digest.hexdigest()}
