"""Result bundles: `results/<run-id>.tar.gz` holding a run directory plus SHA256SUMS, and its check.

A bundle is deterministic (same run -> same bytes): members sorted, fixed mtime/owner/mode, gzip
without name or date. Secrets found at bundle time are redacted in the bundle copy (never on disk).
Standard library only, except that tables are re-rendered by kit.report when verifying.
"""
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from kit import events

SUMS = "SHA256SUMS"
REDACTED = b"[REDACTED]"
SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?|APIKEY)($|_)", re.I)
HF_TOKEN_SHAPE = re.compile(rb"hf_[A-Za-z0-9]{30,}")
MIN_SECRET_LEN = 8   # shorter values of secret-named variables are not worth (or safe) redacting
MANIFEST_KEYS = {"run_id": str, "kit_version": str, "git_commit": (str, type(None)), "command": list,
                 "created": str, "ended": (str, type(None)), "complete": bool, "runtime": dict,
                 "options": dict, "models": dict, "server_args": dict, "environment": (dict, type(None)),
                 "arms": dict}
OPTION_KEYS = ("tables", "arms", "repeat", "protocol", "fixed_output", "cache", "server_cmd", "ready_timeout")


class BundleError(Exception):
    pass


# ---------------------------------------------------------------- secrets

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
            raw = form.encode("utf-8")
            if raw in data:
                data = data.replace(raw, REDACTED)
                hits.append(name)
    data, n = HF_TOKEN_SHAPE.subn(REDACTED, data)
    if n:
        hits.append("hf_ token")
    return data, hits


# ---------------------------------------------------------------- making a bundle

def run_files(run_dir):
    """Sorted relative POSIX paths of the regular files of a run directory (no symlinks, no *.tmp,
    no old SHA256SUMS)."""
    out = []
    for path in Path(run_dir).rglob("*"):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_symlink():
            print(f"bundle: skipped symlink {rel}", file=sys.stderr)
        elif path.is_file() and not rel.endswith(".tmp") and rel != SUMS:
            out.append(rel)
    return sorted(out)


def missing_outputs(run_dir, numbers):
    """Table and figure files the run directory should hold but does not."""
    from kit.plot import expected_figures
    wanted = [f"tables/table{n}.{ext}" for n in numbers for ext in ("md", "json")]
    wanted += [f"figures/{name}" for name in expected_figures(numbers)]
    return [rel for rel in wanted if not (Path(run_dir) / rel).is_file()]


def render_all(run_dir, numbers):
    """The usual `render` callback: tables (kit.report) and figures (kit.plot)."""
    from kit import plot, report
    report.write_tables(run_dir, numbers)
    plot.plot_run(run_dir, numbers)


def read_manifest(run_dir):
    path = Path(run_dir) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{run_dir} is not a run directory (no manifest.json)") from None
    except ValueError as e:
        raise BundleError(f"{path}: not JSON ({e})") from None


def bundle_contents(run_dir, manifest, incomplete):
    """{relative path: bytes} of everything that goes in, redacted, with SHA256SUMS."""
    secrets = secret_values()
    contents, redacted = {}, {}
    for rel in run_files(run_dir):
        data = (Path(run_dir) / rel).read_bytes()
        if rel == "manifest.json" and incomplete:
            data = (json.dumps(dict(manifest, bundled_incomplete=True), indent=1, sort_keys=True) + "\n").encode()
        data, hits = redact(data, secrets)
        if hits:
            redacted[rel] = sorted(set(hits))
        contents[rel] = data
    for rel, names in redacted.items():
        print(f"bundle: redacted {', '.join(names)} in {rel} (bundle copy only; the run directory still holds it)",
              file=sys.stderr)
    contents[SUMS] = "".join(f"{hashlib.sha256(data).hexdigest()}  {rel}\n"
                             for rel, data in sorted(contents.items())).encode()
    return contents


def write_targz(path, prefix, contents, check=None):
    """Deterministic tar.gz of {relative path: bytes} under prefix/, written via a temp file + rename.
    check(temp path) -> problems: when it finds any, BundleError and nothing is left behind."""
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
            raise BundleError("the bundle would not verify:\n  " + "\n  ".join(problems))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def make_bundle(run_dir, allow_incomplete=False, render=None):
    """Write <results>/<run-id>.tar.gz next to the run directory and return its path.
    render(run_dir, table_numbers) is called first when tables or figures are missing."""
    run_dir = Path(run_dir).resolve()
    manifest = read_manifest(run_dir)
    incomplete = manifest.get("complete") is not True
    if incomplete and not allow_incomplete:
        raise BundleError(f"run {run_dir.name} is incomplete (manifest says complete: false); "
                          "finish it with --resume, or bundle it anyway with --allow-incomplete")
    numbers = sorted(int(n) for n in manifest.get("options", {}).get("tables", []))
    if render is not None and missing_outputs(run_dir, numbers):
        render(run_dir, numbers)
    contents = bundle_contents(run_dir, manifest, incomplete)
    return write_targz(run_dir.parent / f"{run_dir.name}.tar.gz", run_dir.name, contents, check=self_check)


def self_check(path):
    """verify_bundle before the rename; stale tables get a hint (they are only rendered when missing)."""
    problems = verify_bundle(path)
    if any(p.startswith("table differs") for p in problems):
        problems.append("the run's tables are stale: re-render them (`kit table`) and bundle again")
    return problems


# ---------------------------------------------------------------- verifying a bundle

def read_members(path):
    """(top folder, {relative path: bytes}, problems) of a bundle; unsafe or odd members are problems."""
    problems, contents, tops = [], {}, set()
    with tarfile.open(path, "r:gz") as tar:
        for m in tar:
            parts = PurePosixPath(m.name).parts
            if m.isdir():
                continue
            if m.name.startswith("/") or ".." in parts or len(parts) < 2:
                problems.append(f"unsafe member path: {m.name}")
                continue
            if not m.isfile():
                problems.append(f"not a regular file: {m.name}")
                continue
            tops.add(parts[0])
            contents[PurePosixPath(*parts[1:]).as_posix()] = tar.extractfile(m).read()
    if len(tops) > 1:
        problems.append(f"members under several top folders: {', '.join(sorted(tops))}")
    return (sorted(tops) or [""])[0], contents, problems


def unpack(contents, dest, skip=()):
    """Write {relative path: bytes} (from read_members) under dest, leaving out paths starting with skip."""
    for rel, data in contents.items():
        if rel.startswith(tuple(skip)):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    return dest


def check_sums(contents):
    if SUMS not in contents:
        return [f"{SUMS} missing"]
    problems, listed = [], {}
    for number, line in enumerate(contents[SUMS].decode("utf-8", "replace").splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            problems.append(f"{SUMS}:{number}: malformed line")
        elif m.group(2) in listed:
            problems.append(f"{SUMS}:{number}: {m.group(2)} listed twice")
        else:
            listed[m.group(2)] = m.group(1)
    for rel, digest in sorted(listed.items()):
        if rel not in contents:
            problems.append(f"missing file (listed in {SUMS}): {rel}")
        elif hashlib.sha256(contents[rel]).hexdigest() != digest:
            problems.append(f"checksum mismatch (file changed): {rel}")
    for rel in sorted(set(contents) - set(listed) - {SUMS}):
        problems.append(f"extra file (not in {SUMS}): {rel}")
    return problems


def check_manifest(contents, top):
    try:
        manifest = json.loads(contents["manifest.json"])
    except KeyError:
        return None, ["manifest.json missing"]
    except ValueError as e:
        return None, [f"manifest.json: not JSON ({e})"]
    if not isinstance(manifest, dict):
        return None, ["manifest.json: not a JSON object"]
    problems = [f"manifest.json: missing key {k!r}" for k in MANIFEST_KEYS if k not in manifest]
    problems += [f"manifest.json: {k!r} has the wrong type ({type(manifest[k]).__name__})"
                 for k, types in MANIFEST_KEYS.items() if k in manifest and not isinstance(manifest[k], types)]
    if problems:
        return None, problems
    problems += [f"manifest.json: options lacks {k!r}" for k in OPTION_KEYS if k not in manifest["options"]]
    problems += [f"manifest.json: models lacks {m!r}" for m in ("A", "B")
                 if not isinstance(manifest["models"].get(m), dict) or "name" not in manifest["models"][m]]
    if "name" not in manifest["runtime"]:
        problems.append("manifest.json: runtime lacks 'name'")
    if manifest["run_id"] != top:
        problems.append(f"manifest.json: run_id {manifest['run_id']!r} differs from the bundle folder {top!r}")
    if not manifest["complete"] and manifest.get("bundled_incomplete") is not True:
        problems.append("manifest.json: run is incomplete but not marked bundled_incomplete")
    return manifest, problems


def check_events(run_copy, contents):
    problems = []
    for rel in sorted(r for r in contents if PurePosixPath(r).name == "events.jsonl"):
        try:
            evs = events.read(run_copy / rel)
        except events.SchemaError as e:
            problems.append(f"{rel}: bad events: {str(e).replace(str(run_copy / rel), rel)}")
            continue
        parts = PurePosixPath(rel).parts
        if len(parts) == 3:
            arm, rep = parts[0], parts[1]
            odd = [e["seq"] for e in evs if e["arm"] != arm or f"r{e['repeat']}" != rep]
            if odd:
                problems.append(f"{rel}: events of another arm/repeat (seq {odd[0]} ...)")
    return problems


def check_tables(run_copy, contents, manifest):
    """Re-render every table from the bundled events (kit.report.write_tables: build_table + render,
    github and json, into a copy without the bundled tables) and compare byte for byte."""
    table_file = re.compile(r"tables/table(\d+)\.(md|json)")
    bundled = {r for r in contents if table_file.fullmatch(r)}
    numbers = sorted({int(n) for n in manifest["options"].get("tables") or []}
                     | {int(table_file.fullmatch(r).group(1)) for r in bundled})
    if not numbers:
        return []
    try:
        from kit import report
        written = report.write_tables(run_copy, numbers)
        fresh = {f"tables/{Path(p).name}": Path(p).read_bytes() for p in written}
    except Exception as e:  # noqa: BLE001 - any failure to re-render is a finding, not a crash
        text = str(e).replace(f"{run_copy}/", "")
        return [f"tables could not be re-rendered from the events: {type(e).__name__}: {text}"]
    problems = []
    for rel in sorted(set(fresh) | bundled):
        if rel not in contents:
            problems.append(f"table missing: {rel}")
        elif rel not in fresh:
            problems.append(f"table not re-rendered from the events (unexpected file): {rel}")
        elif contents[rel] != fresh[rel]:
            problems.append(f"table differs from one re-rendered from the events: {rel}")
    return problems


def verify_bundle(path):
    """Problems found in a bundle, one line each; an empty list means it is good."""
    try:
        top, contents, problems = read_members(path)
    except (OSError, tarfile.TarError, EOFError, gzip.BadGzipFile) as e:
        return [f"not a readable tar.gz: {e}"]
    problems += check_sums(contents)
    problems += [f"possible secret (hf_ token) in {rel}" for rel, data in sorted(contents.items())
                 if HF_TOKEN_SHAPE.search(data)]
    manifest, manifest_problems = check_manifest(contents, top)
    problems += manifest_problems
    with tempfile.TemporaryDirectory(prefix="kit-verify-") as tmp:
        run_copy = unpack(contents, Path(tmp) / (top or "run"), skip=("tables/",))  # tables: re-rendered below
        problems += check_events(run_copy, contents)
        if manifest is not None:
            problems += check_tables(run_copy, contents, manifest)
    return problems
