"""Archive primitives: a deterministic tar.gz writer and a safe, streaming reader.

The bottom of the read side: it knows tar files, not runs. Members are streamed one at a time (never
all into memory), each refused from its header above its size limit and all of them above TOTAL_LIMIT;
only regular files under one top folder are taken, and only those the caller keeps are written to disk.
"""
import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from kit.errors import BadRecord

MEMBER_LIMIT = 256 * 2**20     # one file of a run: logs of a long run are tens of MiB at most
TOTAL_LIMIT = 1 * 2**30        # a whole bundle: the committed reference runs are about 1 MiB each
MEMBER_COUNT = 20_000          # a run of all tables x 100 repeats has about 4,000 files
SCAN_OVERLAP = 64
READ_LIMIT = 4 * 2**20         # members are copied 1 MiB at a time; tar headers are a few KiB


def write_targz(path, prefix, contents, check=None):
    """Deterministic tar.gz of {relative path: bytes} under prefix/, via a temp file + rename.
    check(temp path) -> problems: when it finds any, nothing is left behind and they are returned."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.chmod(fd, 0o644)   # mkstemp makes it private; a bundle is meant to be shared
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for rel in sorted(contents):
                        info = tarfile.TarInfo(f"{prefix}/{rel}")
                        info.size, info.mtime, info.mode = len(contents[rel]), 0, 0o644
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        tar.addfile(info, io.BytesIO(contents[rel]))
            raw.flush()
            os.fsync(raw.fileno())
        problems = check(tmp) if check else []
        if problems:
            Path(tmp).unlink(missing_ok=True)
            return problems
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return []


class Unpacked:
    """A bundle unpacked into a temporary folder: .top (its folder name), .root (that folder),
    .sha256 {relative path: hex digest}, .matched {relative paths whose bytes match `scan`},
    .problems (members refused, one line each).

    limit(rel): the largest size that member may have (checked from its header, before reading it);
    kept(rel): whether it is written to the folder (the others are only hashed and scanned, so a bundle
    of large logs writes nothing to TMPDIR). Past TOTAL_LIMIT bytes or MEMBER_COUNT members in all, the
    rest of the bundle is not read."""

    def __init__(self, path, limit=None, kept=None, scan=None):
        self._tmp = tempfile.TemporaryDirectory(prefix="sleepkit-")
        self.top, self.sha256, self.matched, self.problems = "", {}, set(), []
        self._limit, self._kept, self._scan = limit or (lambda rel: MEMBER_LIMIT), kept or (lambda rel: True), scan
        try:
            self._read(Path(path))
        except (OSError, tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            self.close()
            raise BadRecord(f"{path}: not a readable tar.gz ({e})", "is it a bundle made by `kit bundle`?") from None
        self.root = Path(self._tmp.name) / (self.top or "run")

    def _read(self, path):
        tops, total = set(), 0
        with gzip.open(path, "rb") as raw, tarfile.open(fileobj=_BoundedReads(raw), mode="r:") as tar:
            for count, m in enumerate(tar, 1):
                parts = PurePosixPath(m.name).parts
                rel = PurePosixPath(*parts[1:]).as_posix() if len(parts) > 1 else ""
                if count > MEMBER_COUNT:
                    self.problems.append(f"more than {MEMBER_COUNT} members: the rest is not read")
                    break
                if m.isdir():
                    continue
                if m.name.startswith("/") or ".." in parts or len(parts) < 2:
                    self.problems.append(f"unsafe member path: {m.name}")
                elif not m.isfile():
                    self.problems.append(f"not a regular file: {m.name}")
                elif m.size > self._limit(rel):
                    self.problems.append(f"member too large ({_mib(m.size)} MiB, limit {_mib(self._limit(rel))} "
                                         f"MiB for this file): {m.name}")
                elif total + m.size > TOTAL_LIMIT:
                    self.problems.append(f"members add up to more than {_mib(TOTAL_LIMIT)} MiB at {m.name}: "
                                         "the rest is not read")
                    break
                else:
                    tops.add(parts[0])
                    total += m.size
                    dest = Path(self._tmp.name) / parts[0] / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)   # a folder of only hashed members still exists
                    self.sha256[rel], matched = _copy_out(tar.extractfile(m), dest if self._kept(rel) else None,
                                                          self._scan)
                    if matched:
                        self.matched.add(rel)
        if len(tops) > 1:
            self.problems.append(f"members under several top folders: {', '.join(sorted(tops))}")
        self.top = sorted(tops)[0] if tops else ""

    def read(self, rel):
        """A kept member's bytes."""
        return (self.root / rel).read_bytes()

    def close(self):
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _BoundedReads:
    """The decompressed tar stream, refusing any one read above READ_LIMIT: tarfile reads a pax or GNU
    long-name header whole, so a 1 MiB bundle could otherwise make it hold hundreds of MiB."""

    def __init__(self, raw):
        self.raw = raw

    def read(self, size=-1):
        if size is None or size < 0 or size > READ_LIMIT:
            raise tarfile.ReadError(f"a header or block of {size} bytes (at most {READ_LIMIT} are read at once)")
        return self.raw.read(size)

    def seek(self, *args):
        return self.raw.seek(*args)

    def tell(self):
        return self.raw.tell()


def _copy_out(src, dest, scan):
    """(sha256 hex digest, whether `scan` matched) of a member's bytes, streamed to dest unless None.
    A match across two blocks is found while it is shorter than SCAN_OVERLAP bytes."""
    if dest is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
    digest, matched, tail = hashlib.sha256(), False, b""
    with src, (open(dest, "wb") if dest is not None else contextlib.nullcontext()) as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            if out is not None:
                out.write(block)
            if scan is not None and not matched:
                matched = bool(scan.search(tail + block))
                tail = block[-SCAN_OVERLAP:]
    return digest.hexdigest(), matched


def _mib(n):
    return f"{n / 2**20:.0f}"
