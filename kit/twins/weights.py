"""A twin's random bf16 weights: the bits (splitmix64 of the element index on CPU or CUDA, or the study
twins' CPU Mersenne Twister), the values they make, and safetensors shards written with progress."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from math import prod
from pathlib import Path

from kit.twins.params import total_numel

_SHARD_BYTES = 5 * 10**9      # like transformers' max_shard_size="5GB"
_CHUNK = 1 << 22              # elements generated at a time per tensor (CPU; values do not depend on it)
_CHUNK_GPU = 1 << 26
_STD = 0.02
# Irwin-Hall sum of four int16 uniforms, centred and doubled to an even integer: its std is
# 2 * sqrt(4 * (2**32 - 1) / 12); the float32 multiply by _SCALE maps that to _STD.
_SCALE = _STD / (2 * (4 * ((1 << 32) - 1) / 12) ** 0.5)


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
        nbytes = 2 * prod(shape)
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    return shards


def write_weights(d, params, out: Path, seed: int, bits: str, device: str,
                  say: Callable[[str], None]) -> tuple[list[str], dict | None]:
    """Make the tensors params names and write them into out as safetensors, in shards of at most
    _SHARD_BYTES; return the files' names and, when sharded, model.safetensors.index.json's contents."""
    shards = _shards(params)
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    progress = _Progress(total_numel(params), say)

    def make(name: str, shape: tuple):
        return _fill(d.torch, name, shape, seed, bits, device).cpu()

    def save(fname: str, shard: list, jobs: list) -> None:
        tensors = {}
        for (name, shape), job in zip(shard, jobs):
            tensors[name] = job.result()
            progress.add(prod(shape))
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
    if len(shards) == 1:
        return names, None
    return names, {"metadata": {"total_size": 2 * progress.total},
                   "weight_map": {n: f for f, sh in zip(names, shards) for n, _ in sh}}


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
