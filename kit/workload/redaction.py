"""The one rule for keeping secrets out of what the kit writes: the values of environment variables named
like a token, key, secret or password, and anything shaped like a Hugging Face token.

The workload applies it to the server logs as they are written; `kit bundle` (kit/bundle.py) to every
file it packs. Container side: standard library only.
"""
import json
import os
import re

REDACTED = b"[REDACTED]"
SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?|APIKEY)($|_)", re.I)
HF_TOKEN_SHAPE = re.compile(rb"hf_[A-Za-z0-9]{30,}")
MIN_SECRET_LEN = 8   # shorter values of secret-named variables are not worth (or safe) redacting


def secret_values(environ=None):
    """[(name, value)] of environment variables whose name looks like a token/key/secret/password."""
    environ = os.environ if environ is None else environ
    found = [(k, v) for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN]
    return sorted(found, key=lambda kv: (-len(kv[1]), kv[0]))


def redact(data, secrets):
    """(data with every secret value and hf_-shaped token replaced by [REDACTED], names of what was found)."""
    hits = []
    for name, value in secrets:
        for form in {value, json.dumps(value)[1:-1]}:
            raw = form.encode("utf-8", "surrogateescape")   # os.environ keeps odd bytes as surrogates
            if raw in data:
                data = data.replace(raw, REDACTED)
                hits.append(name)
    data, n = HF_TOKEN_SHAPE.subn(REDACTED, data)
    if n:
        hits.append("hf_ token")
    return data, hits
