"""Result bundles: `results/<run-id>.tar.gz` holding a run directory plus SHA256SUMS, and its check.

A bundle is deterministic (same run -> same bytes): members sorted, fixed mtime/owner/mode, gzip
without name or date. Secrets found at bundle time are redacted in the bundle copy (never on disk), by the same
rule the workload applies to server logs as it writes them (kit.workload.redaction).
Verifying streams the members (kit.results.archive: each within its kind's size limit, all within a total
budget; the records to a temporary folder, logs and figures only hashed), checks sums, the manifest, every
events file (schema, one workload's, and that it belongs to this run, arm and repeat), and re-renders the
tables. kit compare and kit table read bundles through the same checks (load_bundle).
"""
import hashlib
import json
import re
import sys
from pathlib import Path, PurePosixPath

from kit import hints, layout, manifest, plot, results, runs
from kit.errors import BadInput, BadRecord, KitError, NotFound
from kit.results import archive
from kit.results.load import mixed_workloads
from kit.workload import events
from kit.workload.redaction import HF_TOKEN_SHAPE, redact, secret_values

SUMS = "SHA256SUMS"
SUMS_LIMIT = 4 * 2**20        # one line per file: about 40,000 files
SERVER_LOG_LIMIT = 16 * 2**20  # a real server's log of three starts is a few hundred KiB
MAX_PROBLEMS = 20             # verify names this many problems, then counts the rest


# ---------------------------------------------------------------- making a bundle

def run_files(run_dir, figures=True):
    """Sorted relative POSIX paths of the regular files of a run directory (no symlinks, no *.tmp,
    no old SHA256SUMS, no .lock; no figures/ unless figures)."""
    out = []
    for path in Path(run_dir).rglob("*"):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_symlink():
            print(f"bundle: skipped symlink {rel}", file=sys.stderr)
        elif path.is_file() and not rel.endswith(".tmp") and rel not in (SUMS, layout.LOCK) \
                and (figures or not rel.startswith(layout.FIGURES + "/")):
            out.append(rel)
    return sorted(out)


def bundle_contents(run_dir, manifest_data, incomplete, figures=True):
    """{relative path: bytes} of everything that goes in, redacted, with SHA256SUMS."""
    secrets = secret_values()
    contents, redacted = {}, {}
    for rel in run_files(run_dir, figures):
        data = (Path(run_dir) / rel).read_bytes()
        if rel == layout.MANIFEST and incomplete:
            data = (json.dumps(dict(manifest_data, bundled_incomplete=True), indent=1, sort_keys=True) + "\n").encode()
        data, hits = redact(data, secrets)
        if hits:
            redacted[rel] = sorted(set(hits))
        contents[rel] = data
    for rel, names in redacted.items():
        print(f"bundle: redacted {', '.join(names)} in {rel} (bundle copy only; the run directory still holds it)",
              file=sys.stderr)
    contents[SUMS] = sums_text(contents)
    return contents


def sums_text(contents):
    """SHA256SUMS of {relative path: bytes} (any old SHA256SUMS among them left out)."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {rel}\n"
                   for rel, data in sorted(contents.items()) if rel != SUMS).encode()


def make_bundle(run_dir, allow_incomplete=False, render=None, figures=True):
    """Write <results>/<run-id>.tar.gz next to the run directory and return its path.
    render(run) is called first to write the run's tables and figures (they are never bundled stale).
    figures=False leaves figures/ out (`kit plot` redraws them from the events)."""
    run_dir = layout.RunDir(Path(run_dir).resolve())
    data = manifest.read_dict(run_dir)
    incomplete = data.get("complete") is not True
    if incomplete and not allow_incomplete:
        resume = hints.resume_command(run_dir.run_id, run_dir.path.parent, sweep=bool(data.get("sweep")))
        raise BadInput(f"run {run_dir.run_id} is incomplete (manifest says complete: false)",
                       f"finish it with `{resume}`, or bundle it anyway with --allow-incomplete")
    if render is not None:
        render(results.load_run(run_dir.path))
    contents = bundle_contents(run_dir.path, data, incomplete, figures)
    path = run_dir.path.parent / f"{run_dir.run_id}.tar.gz"
    problems = archive.write_targz(path, run_dir.run_id, contents, check=verify_bundle)
    if problems:
        raise BadRecord("the bundle would not verify: " + "; ".join(problems[:3]))
    return path


def bundle_run(run_dir, allow_incomplete=False, figures=True):
    """`kit bundle`: the run's tables (and, with figures, any missing figure) written fresh, then make_bundle."""
    return make_bundle(run_dir, allow_incomplete, render=lambda run: render_outputs(run, figures), figures=figures)


def render_outputs(run, figures=True):
    """Tables always: a bundle never holds stale ones. Figures (when asked for) when any is missing."""
    results.write_tables(run)
    if not figures:
        return
    folder = layout.RunDir(run.source).figures_dir
    if any(not (folder / name).is_file() for name in plot.expected_figures(run, run.tables)):
        plot.plot_run(run, run.tables)


# ---------------------------------------------------------------- verifying a bundle

def server_log(rel):
    return re.fullmatch(r"server-[AB]\.log", PurePosixPath(rel).name) is not None


def member_limit(rel):
    """The largest size a bundle member may have: a record's (layout.size_limit), SHA256SUMS's, a log's."""
    if rel == SUMS:
        return SUMS_LIMIT
    if server_log(rel):
        return SERVER_LOG_LIMIT
    if rel.endswith((".json", ".jsonl")) or rel.startswith(layout.TABLES + "/"):
        return layout.size_limit(PurePosixPath(rel).name)
    return archive.MEMBER_LIMIT


def kept(rel):
    """The members the checks and load_run read from disk (the server logs: runs before events schema 3 get
    their load breakdowns from them); other logs and figures are only hashed and scanned."""
    return rel == SUMS or rel.endswith((".json", ".jsonl")) or rel.startswith(layout.TABLES + "/") or server_log(rel)


def unpack(path):
    return archive.Unpacked(path, limit=member_limit, kept=kept, scan=HF_TOKEN_SHAPE)


def check_sums(unpacked):
    if SUMS not in unpacked.sha256:
        return [f"{SUMS} missing"]
    problems, listed, malformed = [], {}, []
    for number, line in enumerate(unpacked.read(SUMS).decode("utf-8", "replace").splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            malformed.append(number)
        elif m.group(2) in listed:
            problems.append(f"{SUMS}:{number}: {m.group(2)} listed twice")
        else:
            listed[m.group(2)] = m.group(1)
    if malformed:      # a garbage file: one line, not one per line
        return [f"{SUMS}: {len(malformed)} malformed line(s) (the first: line {malformed[0]})"]
    for rel, digest in sorted(listed.items()):
        if rel not in unpacked.sha256:
            problems.append(f"missing file (listed in {SUMS}): {rel}")
        elif unpacked.sha256[rel] != digest:
            problems.append(f"checksum mismatch (file changed): {rel}")
    for rel in sorted(set(unpacked.sha256) - set(listed) - {SUMS}):
        problems.append(f"extra file (not in {SUMS}): {rel}")
    return problems


def check_manifest(unpacked):
    """(the manifest as a dict or None, [problem]): kit/manifest.py's checks, and that it is this bundle's."""
    if layout.MANIFEST not in unpacked.sha256:
        return None, ["manifest.json missing"]
    try:
        text = layout.read_text(unpacked.root / layout.MANIFEST, "manifest", where=layout.MANIFEST)
        data = manifest.parse(text, layout.MANIFEST)
    except BadRecord as e:
        return None, [e.line()]
    data, problems = manifest.problems(data)
    if data is None:
        return None, problems
    if data["run_id"] != unpacked.top:
        problems.append(f"manifest.json: run_id {data['run_id']!r} differs from the bundle folder {unpacked.top!r}")
    if not data["complete"] and data.get("bundled_incomplete") is not True:
        problems.append("manifest.json: run is incomplete but not marked bundled_incomplete")
    return data, problems


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
        mixed = mixed_workloads(evs)
        if mixed:
            problems.append(f"{rel}: {mixed}")
    return problems


def check_tables(unpacked, data):
    """Re-render every table (and the load breakdown) from the bundled events (a run's tables are never read
    back) and compare byte for byte."""
    table_file = re.compile(r"tables/(?:table(\d+)|loads)\.(md|json)")
    bundled = {r for r in unpacked.sha256 if table_file.fullmatch(r)}
    numbers = sorted({int(n) for n in (data.get("options") or {}).get("tables") or []}
                     | {int(table_file.fullmatch(r).group(1)) for r in bundled if table_file.fullmatch(r).group(1)})
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


def check_guide(unpacked, data):
    """A sweep run's guide, re-rendered from the bundled events, must equal the bundled one byte for byte."""
    if "sweep" not in data:
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


def check(unpacked):
    """Every problem of an unpacked bundle, one line each."""
    if unpacked.problems:      # members refused: the checks below would only find them missing
        return list(unpacked.problems)
    problems = check_sums(unpacked)
    problems += [f"possible secret (hf_ token) in {rel}" for rel in sorted(unpacked.matched)]
    data, manifest_problems = check_manifest(unpacked)
    problems += manifest_problems
    event_problems = check_events(unpacked, data["run_id"] if data else None)
    problems += event_problems
    if data is not None and not event_problems:     # else re-rendering fails on the same file
        problems += check_tables(unpacked, data) + check_guide(unpacked, data)
    return problems


def verify_bundle(path):
    """Problems found in a bundle, one line each (the first MAX_PROBLEMS, then a count); [] means good."""
    try:
        unpacked = unpack(path)
    except BadRecord as e:
        return [e.line()]
    with unpacked:
        problems = check(unpacked)
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more problem(s)"]
    return problems


def load_bundle(path):
    """The run in a bundle, read through the same checks as `kit bundle verify` (kit compare and kit table
    take no bundle that would not verify): BadRecord naming the first problem."""
    with unpack(path) as unpacked:
        problems = check(unpacked)
        if problems:
            more = f" (and {len(problems) - 1} more: `kit bundle verify {path}`)" if len(problems) > 1 else ""
            raise BadRecord(f"{path}: {problems[0]}{more}", "is it a bundle made by `kit bundle`, unchanged?")
        run = results.load_run(unpacked.root)       # events are read into memory here
    run.source = Path(path)
    return run


def bundle_named(run_id, results_dir, allow_incomplete=False, figures=True, say=None):
    """`kit bundle [RUN_ID]`: the run runs.pick_run finds (default: the latest) archived; the archive's path."""
    return bundle_run(runs.pick_run(results_dir, run_id, say).path, allow_incomplete=allow_incomplete, figures=figures)


def verify_report(path, say):
    """`kit bundle verify FILE`: say() each problem, then the verdict (ok or FAILED); the exit status (1: problems)."""
    if not Path(path).is_file():
        raise NotFound(f"no bundle file {path}")
    problems = verify_bundle(path)
    for problem in problems:
        say(f"{path}: {problem}")
    say(f"{path}: {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


def load_named(source, results_dir, say=None):
    """The run `kit table` reads: a bundle (.tar.gz, through load_bundle), else the one runs.pick_run finds (a run
    id, a run folder; default: the latest run)."""
    if source and source.endswith((".tar.gz", ".tgz")):
        return load_any(source)
    return results.load_run(runs.pick_run(results_dir, source, say).path)


def load_any(source, results_dir=None, say=None):
    """A run from a run id (in results_dir or its reference/ folder), a run directory, or a bundle (.tar.gz,
    through load_bundle)."""
    path = Path(source)
    if path.name.endswith((".tar.gz", ".tgz")):
        if not path.is_file():
            raise NotFound(f"no bundle file {source}")
        return load_bundle(path)
    if path.is_dir() and (path / layout.MANIFEST).exists():
        return results.load_run(path)
    if results_dir is not None and layout.RUN_ID.fullmatch(str(source)):
        return results.load_run(runs.pick_run(results_dir, str(source), say).path)
    raise NotFound(f"{source!r} is neither a run id in {results_dir}, a run folder nor a bundle",
                   "list the runs with `kit ls`")
