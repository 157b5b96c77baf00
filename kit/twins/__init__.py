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
torch, transformers, tokenizers and safetensors are an optional extra: `pip install '.[twins]'`; they
are imported only when a twin is made, so the catalogue stays cheap to import.

    configs    the real models' config.json contents, as published, and where they were read
    catalogue  Twin, TWINS: what each twin copies and changes; list_twins, get_twin, twin_config
    params     the tensors a twin stores and its parameter counts (stored, active)
    tokenizer  the small BPE tokenizer and its tokenizer_config.json
    weights    the random bf16 weights (splitmix64 or mt19937 bits, CPU or CUDA), safetensors shards
    write      make_twin / write_twin: all of a twin's files, README and record, into a new folder
"""
from kit.errors import TwinDependencyError
from kit.twins.catalogue import TWINS, Twin, get_twin, list_twins, twin_config
from kit.twins.params import active_params, count_params, stored_params
from kit.twins.tokenizer import TOKENIZER_VOCAB
from kit.twins.write import INSTALL_HINT, RECORD, make_twin, write_twin

__all__ = ["INSTALL_HINT", "RECORD", "TOKENIZER_VOCAB", "TWINS", "Twin", "TwinDependencyError", "active_params",
           "count_params", "get_twin", "list_twins", "make_twin", "stored_params", "twin_config", "write_twin"]
