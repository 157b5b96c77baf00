"""Archive primitives: a deterministic tar.gz writer and a safe, streaming reader.

The bottom of the read side: it knows tar files, not runs. Members are read one at a time into a
folder (never all into memory), each refused above MEMBER_LIMIT, and only regular files under one
top folder are taken.
"""
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
TOTAL_LIMIT = 4 * 2**30


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
    .sha256 {relative path: hex digest}, .problems (members refused, one line each)."""

    def __init__(self, path, member_limit=MEMBER_LIMIT, total_limit=TOTAL_LIMIT):
        self._tmp = tempfile.TemporaryDirectory(prefix="sleepkit-")
        self.top, self.sha256, self.problems = "", {}, []
        try:
            self._read(Path(path), member_limit, total_limit)
        except (OSError, tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            self.close()
            raise BadRecord(f"{path}: not a readable tar.gz ({e})", "is it a bundle made by `kit bundle`?") from None
        self.root = Path(self._tmp.name) / (self.top or "run")

    def _read(self, path, member_limit, total_limit):
        tops, total = set(), 0
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                parts = PurePosixPath(m.name).parts
                if m.isdir():
                    continue
                if m.name.startswith("/") or ".." in parts or len(parts) < 2:
                    self.problems.append(f"unsafe member path: {m.name}")
                elif not m.isfile():
                    self.problems.append(f"not a regular file: {m.name}")
                elif m.size > member_limit or total + m.size > total_limit:
                    self.problems.append(f"member too large ({m.size / 2**20:.0f} MiB, limit "
                                         f"{member_limit // 2**20} MiB a file, {total_limit // 2**30} GiB in all): {m.name}")
                else:
                    tops.add(parts[0])
                    total += m.size
                    rel = PurePosixPath(*parts[1:]).as_posix()
                    self.sha256[rel] = _copy_out(tar.extractfile(m), Path(self._tmp.name) / parts[0] / rel)
        if len(tops) > 1:
            self.problems.append(f"members under several top folders: {', '.join(sorted(tops))}")
        self.top = sorted(tops)[0] if tops else ""

    def read(self, rel):
        return (self.root / rel).read_bytes()

    def close(self):
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _copy_out(src, dest):
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with src, open(dest, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()
