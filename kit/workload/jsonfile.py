"""Reading record files that may be damaged or hostile: the one place run files become text and JSON.

    data = read_bytes(path, limit, where)     refused above `limit` bytes (from its size, before reading)
    text = decode(data, where)                strict UTF-8; a bad byte is named by line
    value = load_json(text, where)            no NaN/Infinity/overflowing numbers, no depth bombs

Each raises RecordError (a ValueError) whose message starts with `where`. Standard library only: the
workload's events reader uses it inside any vLLM image.
"""
import json
import math
import os
import stat

MiB = 2**20


class RecordError(ValueError):
    pass


class _NotFinite(ValueError):
    pass


def read_bytes(path, limit, where=None):
    """The bytes of a regular file of at most `limit` bytes (FileNotFoundError passes through)."""
    where = where or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)     # a FIFO planted in a run must not block us
    except FileNotFoundError:
        raise
    except OSError as e:
        raise RecordError(f"{where}: cannot be read ({e.strerror})") from None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RecordError(f"{where}: not a regular file")
        if info.st_size > limit:
            raise RecordError(f"{where}: {_size(info.st_size)}, larger than such a file may be ({_size(limit)})")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise RecordError(f"{where}: cannot be read ({e.strerror})") from None
    if len(data) > limit:       # it grew while we read it
        raise RecordError(f"{where}: larger than such a file may be ({_size(limit)})")
    return data


def decode(data, where):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise RecordError(f"{where}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def load_json(text, where):
    """json.loads for records: only finite numbers, and nesting as deep as the interpreter's stack allows
    (records nest a few levels; the C parser counts its depth and raises RecursionError past that)."""
    try:
        return json.loads(text, parse_constant=_refuse, parse_float=_finite)
    except _NotFinite as e:
        raise RecordError(f"{where}: number {e} is not finite (JSON has no NaN or Infinity)") from None
    except RecursionError:
        raise RecordError(f"{where}: nested too deeply to be a record (a JSON depth bomb?)") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{where}: not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except ValueError as e:            # e.g. an integer of more digits than Python converts
        raise RecordError(f"{where}: not JSON ({e})") from None


def _refuse(token):
    raise _NotFinite(token)


def _finite(token):
    value = float(token)
    if not math.isfinite(value):
        raise _NotFinite(token[:40])
    return value


def _size(n):
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"
