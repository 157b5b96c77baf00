"""Result bundles: `results/<run-id>.tar.gz` holding a run directory plus SHA256SUMS, and its check.

A bundle is deterministic (same run -> same bytes): members sorted, fixed mtime/owner/mode, gzip
without name or date. Secrets found at bundle time are redacted in the bundle copy (never on disk).
Verifying streams the members to a temporary folder (kit.results.archive), checks sums, the manifest,
every events file (schema, and that it belongs to this run, arm and repeat), and re-renders the tables.
"""
import hashlib
import json
import os
import re
import sys
from pathlib import Path, PurePosixPath

from kit import layout, results
from kit.errors import BadInput, BadRecord, KitError
from kit.options import RunOptions
from kit.results import archive
from kit.workload import events

SUMS = "SHA256SUMS"
REDACTED = b"[REDACTED]"
SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?|APIKEY)($|_)", re.I)
HF_TOKEN_SHAPE = re.compile(rb"hf_[A-Za-z0-9]{30,}")
MIN_SECRET_LEN = 8   # shorter values of secret-named variables are not worth (or safe) redacting
MANIFEST_KEYS = {"run_id": str, "kit_version": str, "git_commit": (str, type(None)), "command": list,
                 "created": str, "ended": (str, type(None)), "complete": bool, "runtime": dict,
                 "options": dict, "models": dict, "server_args": dict, "environment": (dict, type(None))}


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

def run_files(run_dir, figures=True):
    """Sorted relative POSIX paths of the regular files of a run directory (no symlinks, no *.tmp,
    no old SHA256SUMS; no figures/ unless figures)."""
    out = []
    for path in Path(run_dir).rglob("*"):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_symlink():
            print(f"bundle: skipped symlink {rel}", file=sys.stderr)
        elif path.is_file() and not rel.endswith(".tmp") and rel != SUMS \
                and (figures or not rel.startswith(layout.FIGURES + "/")):
            out.append(rel)
    return sorted(out)


def bundle_contents(run_dir, manifest, incomplete, figures=True):
    """{relative path: bytes} of everything that goes in, redacted, with SHA256SUMS."""
    secrets = secret_values()
    contents, redacted = {}, {}
    for rel in run_files(run_dir, figures):
        data = (Path(run_dir) / rel).read_bytes()
        if rel == layout.MANIFEST and incomplete:
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


def make_bundle(run_dir, allow_incomplete=False, render=None, figures=True):
    """Write <results>/<run-id>.tar.gz next to the run directory and return its path.
    render(run) is called first to write the run's tables and figures (they are never bundled stale).
    figures=False leaves figures/ out (`kit plot` redraws them from the events)."""
    run_dir = layout.RunDir(Path(run_dir).resolve())
    manifest = run_dir.read_manifest()
    incomplete = manifest.get("complete") is not True
    if incomplete and not allow_incomplete:
        raise BadInput(f"run {run_dir.run_id} is incomplete (manifest says complete: false)",
                       "finish it with `kit run --resume`, or bundle it anyway with --allow-incomplete")
    if render is not None:
        render(results.load_run(run_dir.path))
    contents = bundle_contents(run_dir.path, manifest, incomplete, figures)
    path = run_dir.path.parent / f"{run_dir.run_id}.tar.gz"
    problems = archive.write_targz(path, run_dir.run_id, contents, check=verify_bundle)
    if problems:
        raise BadRecord("the bundle would not verify: " + "; ".join(problems[:3]))
    return path


# ---------------------------------------------------------------- verifying a bundle

def check_sums(unpacked):
    if SUMS not in unpacked.sha256:
        return [f"{SUMS} missing"]
    problems, listed = [], {}
    for number, line in enumerate(unpacked.read(SUMS).decode("utf-8", "replace").splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            problems.append(f"{SUMS}:{number}: malformed line")
        elif m.group(2) in listed:
            problems.append(f"{SUMS}:{number}: {m.group(2)} listed twice")
        else:
            listed[m.group(2)] = m.group(1)
    for rel, digest in sorted(listed.items()):
        if rel not in unpacked.sha256:
            problems.append(f"missing file (listed in {SUMS}): {rel}")
        elif unpacked.sha256[rel] != digest:
            problems.append(f"checksum mismatch (file changed): {rel}")
    for rel in sorted(set(unpacked.sha256) - set(listed) - {SUMS}):
        problems.append(f"extra file (not in {SUMS}): {rel}")
    return problems


def check_manifest(unpacked):
    if layout.MANIFEST not in unpacked.sha256:
        return None, ["manifest.json missing"]
    try:
        manifest = layout.parse_manifest(unpacked.read(layout.MANIFEST), layout.MANIFEST)
    except BadRecord as e:
        return None, [e.line()]
    problems = [f"manifest.json: missing key {k!r}" for k in MANIFEST_KEYS if k not in manifest]
    problems += [f"manifest.json: {k!r} has the wrong type ({type(manifest[k]).__name__})"
                 for k, types in MANIFEST_KEYS.items() if k in manifest and not isinstance(manifest[k], types)]
    if problems:
        return None, problems
    try:
        RunOptions.from_manifest(manifest).check(here=False)
    except (TypeError, ValueError, KitError) as e:
        problems.append(f"manifest.json: options do not read back ({getattr(e, 'message', e)})")
    problems += [f"manifest.json: models lacks {m!r}" for m in ("A", "B") if "sweep" not in manifest   # a sweep's: per unit
                 and (not isinstance(manifest["models"].get(m), dict) or "name" not in manifest["models"][m])]
    if "name" not in manifest["runtime"]:
        problems.append("manifest.json: runtime lacks 'name'")
    if manifest["run_id"] != unpacked.top:
        problems.append(f"manifest.json: run_id {manifest['run_id']!r} differs from the bundle folder {unpacked.top!r}")
    if not manifest["complete"] and manifest.get("bundled_incomplete") is not True:
        problems.append("manifest.json: run is incomplete but not marked bundled_incomplete")
    return manifest, problems


def check_events(unpacked, run_id):
    """Every events.jsonl follows the schema and belongs to its folder's unit and repeat, and to this run."""
    problems = []
    for rel in sorted(r for r in unpacked.sha256 if PurePosixPath(r).name == layout.EVENTS):
        try:
            evs = events.read(unpacked.root / rel)
        except events.SchemaError as e:
            problems.append(f"{rel}: bad events: {str(e).replace(str(unpacked.root / rel), rel)}")
            continue
        parts = PurePosixPath(rel).parts
        if len(parts) == 3:
            odd = [e["seq"] for e in evs if e["arm"] != parts[0] or f"r{e['repeat']}" != parts[1]]
            if odd:
                problems.append(f"{rel}: events of another arm/repeat (seq {odd[0]} ...)")
        other = next((e for e in evs if e["run"] != run_id), None)
        if run_id and other:
            problems.append(f"{rel}: events of run {other['run']!r}, not {run_id!r} (a renamed copy?)")
    return problems


def check_tables(unpacked, manifest):
    """Re-render every table from the bundled events (a run's tables are never read back) and compare
    byte for byte."""
    table_file = re.compile(r"tables/table(\d+)\.(md|json)")
    bundled = {r for r in unpacked.sha256 if table_file.fullmatch(r)}
    numbers = sorted({int(n) for n in (manifest.get("options") or {}).get("tables") or []}
                     | {int(table_file.fullmatch(r).group(1)) for r in bundled})
    if not numbers:
        return []
    try:
        texts = results.table_texts(results.load_run(unpacked.root), numbers)
    except KitError as e:
        return [f"tables could not be re-rendered from the events: {e.line()}"]
    fresh = {f"tables/{name}": text.encode("utf-8") for name, text in texts.items()}
    problems = []
    for rel in sorted(set(fresh) | bundled):
        if rel not in bundled:
            problems.append(f"table missing: {rel}")
        elif rel not in fresh:
            problems.append(f"table not re-rendered from the events (unexpected file): {rel}")
        elif unpacked.read(rel) != fresh[rel]:
            problems.append(f"table differs from one re-rendered from the events: {rel}")
    return problems


def check_guide(unpacked, manifest):
    """A sweep run's guide, re-rendered from the bundled events, must equal the bundled one byte for byte."""
    if "sweep" not in manifest:
        return []
    try:
        fresh = results.guide.texts(results.load_run(unpacked.root))
    except KitError as e:
        return [f"guide could not be re-rendered from the events: {e.line()}"]
    problems = []
    for name, text in fresh.items():
        rel = f"{layout.TABLES}/{name}"
        if rel not in unpacked.sha256:
            problems.append(f"guide missing: {rel}")
        elif unpacked.read(rel) != text.encode("utf-8"):
            problems.append(f"guide differs from one re-rendered from the events: {rel}")
    return problems


def verify_bundle(path):
    """Problems found in a bundle, one line each; an empty list means it is good."""
    try:
        unpacked = archive.Unpacked(path)
    except BadRecord as e:
        return [e.line()]
    with unpacked:
        problems = list(unpacked.problems)
        problems += check_sums(unpacked)
        problems += [f"possible secret (hf_ token) in {rel}" for rel in sorted(unpacked.sha256)
                     if HF_TOKEN_SHAPE.search(unpacked.read(rel))]
        manifest, manifest_problems = check_manifest(unpacked)
        problems += manifest_problems
        problems += check_events(unpacked, manifest["run_id"] if manifest else None)
        if manifest is not None:
            problems += check_tables(unpacked, manifest)
            problems += check_guide(unpacked, manifest)
    return problems
