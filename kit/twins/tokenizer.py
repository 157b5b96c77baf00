"""The twins' tokenizer: a small byte-level BPE trained on generated text, the same for every weight
seed, and its tokenizer_config.json (special tokens and chat template of the twin's model family)."""

from __future__ import annotations

import functools
import random

from kit.twins.catalogue import Twin

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


def make_tokenizer(tk, twin: Twin, max_len: int) -> tuple[str, dict, dict]:
    """tokenizer.json's text, tokenizer_config.json's contents, and the token ids that config.json
    (bos/eos/pad_token_id) and generation_config.json (stop_ids) name. tk: the tokenizers module."""
    tok = _train_tokenizer(tk, tuple(twin.tokens["special"]))
    ids = {s: tok.token_to_id(s) for s in twin.tokens["special"]}
    t = twin.tokens
    named = {"bos_token_id": ids[t["bos"]], "eos_token_id": ids[t["eos"]], "pad_token_id": ids[t["pad"]],
             "stop_ids": [ids[s] for s in t["stop"]]}
    return tok.to_str(pretty=True) + "\n", _tokenizer_config(twin, max_len, ids), named
