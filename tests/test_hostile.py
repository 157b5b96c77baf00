"""Hostile files, one table: each row damages a fabricated run (or its bundle), runs one command in-process
and expects its exit status and one line of error that names what is wrong: no traceback, nothing written
(not in the results folder, not in TMPDIR).

To add a case, add a row to CASES:
    (id, damage, argv, exit status, what the one line says)
- damage: in_run(rel, edit) edits a file of the run `victim` (edit(bytes) -> bytes); in_bundle(edit)
  edits the members {relative path: bytes} of its bundle before SHA256SUMS is written (a careful forger).
  A case whose argv names BUNDLE gets victim.tar.gz, made from the damaged run as `kit bundle` makes it,
  without its final check.
- argv: the command; VICTIM is the run id, BUNDLE the bundle; --results-dir is added.
- exit status 2: the line is the one on stderr. 1 (`bundle verify`): one problem line, then FAILED.
  0: the substring is in the output (a listing that shows the damage, a table that shows the arm failed).
"""
import json
import shutil
import tempfile

import pytest

from fabricate import fabricate_run
from kit import bundle, results
from kit.cli import main
from kit.errors import KitError
from kit.results import archive

VICTIM, BUNDLE = "victim", "<bundle>"
EVENTS, STATUS, MANIFEST = "l1/r1/events.jsonl", "l1/r1/status.json", "manifest.json"
MiB = 2**20
DEEP = b"[" * 100_000 + b"]" * 100_000


class Damage:
    def __init__(self, run=None, members=None, resum=True):
        self.run, self.members, self.resum = run, members, resum


def in_run(rel, edit):
    def damage(run_dir):
        path = run_dir / rel
        path.write_bytes(edit(path.read_bytes()))
    return Damage(run=damage)


def in_bundle(edit, resum=True):
    """resum: SHA256SUMS is written after the edit (else the one of the undamaged members stays)."""
    return Damage(members=edit, resum=resum)


def sparse(rel, size):
    """The file becomes `size` bytes (a hole: instant, and a reader that checks the size reads none)."""
    def damage(run_dir):
        with open(run_dir / rel, "r+b") as f:
            f.truncate(size)
    return Damage(run=damage)


def first_line(edit):
    """edit(dict) -> dict applied to the first event, written back as JSON that allows NaN."""
    def apply(data):
        first, rest = data.split(b"\n", 1)
        return json.dumps(edit(json.loads(first))).encode() + b"\n" + rest
    return apply


def twice(data):
    return data + data


def second_total(data):
    lines = data.splitlines(keepends=True)
    total = json.loads(lines[-1])
    return data + json.dumps(dict(total, seq=total["seq"] + 1)).encode() + b"\n"


BAD_BYTES = in_run(EVENTS, lambda d: d.replace(b'"kind": "load"', b'"kind": "lo\xffad"', 1))
DEEP_EVENTS = in_run(EVENTS, lambda d: d + DEEP + b"\n")
DEEP_MANIFEST = in_run(MANIFEST, lambda d: DEEP)
DEEP_STATUS = in_run(STATUS, lambda d: DEEP)
NAN = in_run(EVENTS, first_line(lambda e: dict(e, duration_s=float("nan"))))
INF = in_run(EVENTS, first_line(lambda e: dict(e, duration_s=float("inf"))))
HUGE = in_run(EVENTS, lambda d: d.replace(b'"duration_s": ', b'"duration_s": 1e999, "x": ', 1))
DUP_SEQ = in_run(EVENTS, twice)
TWO_TOTALS = in_run(EVENTS, second_total)
BAD_SHAPE = in_run(MANIFEST, lambda d: json.dumps(dict(json.loads(d), options=[], environment="z")).encode())
BAD_OPTIONS = in_run(MANIFEST, lambda d: json.dumps(dict(json.loads(d), options={"tables": 5})).encode())
GARBAGE_SUMS = in_bundle(lambda m: m.update({bundle.SUMS: b"garbage\n" * 10, "extra.txt": b"sneaked in\n"}), False)

CASES = [
    # non-UTF-8 bytes in an events file
    ("bad-bytes/table", BAD_BYTES, ["table", VICTIM], 2, "l1/r1/events.jsonl:1: not UTF-8 text (byte 0xff)"),
    ("bad-bytes/plot", BAD_BYTES, ["plot", VICTIM], 2, "l1/r1/events.jsonl:1: not UTF-8 text"),
    ("bad-bytes/bundle", BAD_BYTES, ["bundle", VICTIM, "--no-figures"], 2, "l1/r1/events.jsonl:1: not UTF-8 text"),
    ("bad-bytes/compare", BAD_BYTES, ["compare", VICTIM, "published"], 2, "l1/r1/events.jsonl:1: not UTF-8 text"),
    ("bad-bytes/compare-bundle", BAD_BYTES, ["compare", BUNDLE, "published"], 2,
     "l1/r1/events.jsonl:1: not UTF-8 text"),
    ("bad-bytes/verify", BAD_BYTES, ["bundle", "verify", BUNDLE], 1, "l1/r1/events.jsonl:1: not UTF-8 text"),
    ("bad-bytes/manifest-ls", in_run(MANIFEST, lambda d: b"\xc3(" + d), ["ls"], 0,
     f"{VICTIM}/manifest.json:1: not UTF-8 text (byte 0xc3)"),
    ("bad-bytes/manifest-show", in_run(MANIFEST, lambda d: b"\xc3(" + d), ["show", VICTIM], 2,
     "manifest.json:1: not UTF-8 text"),
    # a 100000-deep JSON array: RecursionError in json.loads
    ("deep-events/table", DEEP_EVENTS, ["table", VICTIM], 2, "events.jsonl:27: nested too deeply"),
    ("deep-events/bundle", DEEP_EVENTS, ["bundle", VICTIM, "--no-figures"], 2, "events.jsonl:27: nested too deeply"),
    ("deep-events/compare", DEEP_EVENTS, ["compare", VICTIM, "published"], 2, "events.jsonl:27: nested too deeply"),
    ("deep-events/verify", DEEP_EVENTS, ["bundle", "verify", BUNDLE], 1, "events.jsonl:27: nested too deeply"),
    # a manifest of valid JSON in the wrong shape
    ("manifest-shape/ls", BAD_SHAPE, ["ls"], 0, "damaged: "),
    ("manifest-shape/show", BAD_SHAPE, ["show", VICTIM], 2, "manifest.json: 'options' has the wrong type (list)"),
    ("manifest-options/show", BAD_OPTIONS, ["show", VICTIM], 0, "tables 5;"),     # shown as it is, no traceback
    ("manifest-options/table", BAD_OPTIONS, ["table", VICTIM], 2, "manifest.json: its options do not read back"),
    ("deep-manifest/table", DEEP_MANIFEST, ["table", VICTIM], 2, "manifest.json: nested too deeply"),
    ("deep-manifest/ls", DEEP_MANIFEST, ["ls"], 0, "damaged: "),
    ("deep-manifest/show", DEEP_MANIFEST, ["show", VICTIM], 2, "manifest.json: nested too deeply"),
    ("deep-manifest/bundle", DEEP_MANIFEST, ["bundle", VICTIM], 2, "manifest.json: nested too deeply"),
    ("deep-manifest/compare", DEEP_MANIFEST, ["compare", VICTIM, "published"], 2, "manifest.json: nested too deeply"),
    ("deep-manifest/resume", DEEP_MANIFEST, ["run", "--resume", VICTIM], 2, "manifest.json: nested too deeply"),
    ("deep-manifest/verify", DEEP_MANIFEST, ["bundle", "verify", BUNDLE], 1, "manifest.json: nested too deeply"),
    ("deep-status/table", DEEP_STATUS, ["table", VICTIM], 2, "l1/r1/status.json: nested too deeply"),
    ("deep-status/bundle", DEEP_STATUS, ["bundle", VICTIM, "--no-figures"], 2, "status.json: nested too deeply"),
    ("deep-status/compare", DEEP_STATUS, ["compare", VICTIM, "published"], 2, "status.json: nested too deeply"),
    ("deep-status/compare-bundle", DEEP_STATUS, ["compare", BUNDLE, "published"], 2, "status.json: nested too deeply"),
    ("deep-env/table", in_run("l1/r1/env.json", lambda d: DEEP), ["table", VICTIM], 2, "env.json: nested too deeply"),
    # numbers that are not numbers (json.loads takes NaN, Infinity and 1e999 by default)
    ("nan/table", NAN, ["table", VICTIM], 2, "events.jsonl:1: number NaN is not finite"),
    ("nan/compare", NAN, ["compare", VICTIM, "published"], 2, "events.jsonl:1: number NaN is not finite"),
    ("nan/compare-bundle", NAN, ["compare", "good", BUNDLE], 2, "events.jsonl:1: number NaN is not finite"),
    ("nan/verify", NAN, ["bundle", "verify", BUNDLE], 1, "events.jsonl:1: number NaN is not finite"),
    ("infinity/table", INF, ["table", VICTIM], 2, "events.jsonl:1: number Infinity is not finite"),
    ("1e999/compare", HUGE, ["compare", VICTIM, "good"], 2, "events.jsonl:1: number 1e999 is not finite"),
    ("nan-status/table", in_run(STATUS, lambda d: d.replace(b'"seconds": ', b'"seconds": NaN, "x": ')),
     ["table", VICTIM], 2, "status.json: number NaN is not finite"),
    ("status-not-object/table", in_run(STATUS, lambda d: b"[1, 2]"), ["table", VICTIM], 2,
     "status.json: not a JSON object"),
    # files larger than their kind may be: refused by size, before reading
    ("big-events/table", sparse(EVENTS, 65 * MiB), ["table", VICTIM], 2,
     "events.jsonl: 65 MiB, larger than such a file may be (64 MiB)"),
    ("big-status/table", sparse(STATUS, 2 * MiB), ["table", VICTIM], 2, "status.json: 2 MiB, larger than"),
    ("big-manifest/show", sparse(MANIFEST, 250 * MiB), ["show", VICTIM], 2,
     "manifest.json: 250 MiB, larger than such a file may be (16 MiB)"),
    ("big-manifest/ls", sparse(MANIFEST, 250 * MiB), ["ls"], 0, "manifest.json: 250 MiB, larger than"),
    ("big-member/manifest", in_bundle(lambda m: m.update({MANIFEST: m[MANIFEST] + b" " * 17 * MiB})),
     ["bundle", "verify", BUNDLE], 1, f"member too large (17 MiB, limit 16 MiB for this file): {VICTIM}/manifest.json"),
    ("big-member/sums", in_bundle(lambda m: m.update({bundle.SUMS: b"0" * 5 * MiB}), False),
     ["bundle", "verify", BUNDLE], 1, f"member too large (5 MiB, limit 4 MiB for this file): {VICTIM}/SHA256SUMS"),
    ("big-member/compare", in_bundle(lambda m: m.update({EVENTS: m[EVENTS] + b"\n" * 65 * MiB})),
     ["compare", BUNDLE, "published"], 2, f"member too large (65 MiB, limit 64 MiB for this file): {VICTIM}/{EVENTS}"),
    ("many-lines/sums", in_bundle(lambda m: m.update({bundle.SUMS: b"x\n" * 200_000}), False),
     ["bundle", "verify", BUNDLE], 1, "SHA256SUMS: 200000 malformed line(s) (the first: line 1)"),
    # two workloads wrote one events file (two `kit run --resume` at once)
    ("dup-seq/verify", DUP_SEQ, ["bundle", "verify", BUNDLE], 1,
     f"{EVENTS}: events of two workloads in one file (seq 1 twice)"),
    ("dup-seq/compare-bundle", DUP_SEQ, ["compare", BUNDLE, "published"], 2, "events of two workloads in one file"),
    ("dup-seq/table", DUP_SEQ, ["table", VICTIM], 0, "events of two workloads in one file (seq 1 twice)"),
    ("two-totals/verify", TWO_TOTALS, ["bundle", "verify", BUNDLE], 1,
     f"{EVENTS}: events of two workloads in one file (a second total event, seq 27)"),
    # a bundle that does not verify is not read by compare or table either
    ("garbage-sums/compare", GARBAGE_SUMS, ["compare", BUNDLE, "published"], 2, "SHA256SUMS: 10 malformed line(s)"),
    ("garbage-sums/table", GARBAGE_SUMS, ["table", BUNDLE], 2, "SHA256SUMS: 10 malformed line(s)"),
    ("garbage-sums/verify", GARBAGE_SUMS, ["bundle", "verify", BUNDLE], 1, "SHA256SUMS: 10 malformed line(s)"),
    ("extra-file/compare", in_bundle(lambda m: m.update({"extra.txt": b"x"}), False), ["compare", BUNDLE, "published"], 2,
     "extra file (not in SHA256SUMS): extra.txt"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """results/ with two runs of Table 1, `good` and `victim`, their tables written."""
    root = tmp_path_factory.mktemp("pristine") / "results"
    for run_id in ("good", VICTIM):
        results.write_tables(results.load_run(fabricate_run(root, (1,), run_id=run_id)))
    return root


def forge_bundle(run_dir, damage=None):
    """<run>.tar.gz as `kit bundle` writes it (tables re-rendered where the run still loads), without its
    final check, and with the damage's edit of its members."""
    try:
        results.write_tables(results.load_run(run_dir))
    except KitError:
        pass
    members = bundle.bundle_contents(run_dir, {}, incomplete=False, figures=False)
    if damage and damage.members:
        damage.members(members)
        if damage.resum:
            members[bundle.SUMS] = bundle.sums_text(members)
    path = run_dir.parent.parent / f"{run_dir.name}.tar.gz"
    assert archive.write_targz(path, run_dir.name, members) == []
    return path


def files(root):
    """Every path under root, with size and modification time for files."""
    return sorted((str(p.relative_to(root)),) + ((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ())
                  for p in root.rglob("*"))


@pytest.mark.parametrize("damage, argv, code, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile(pristine, tmp_path, monkeypatch, capsys, damage, argv, code, says):
    root = shutil.copytree(pristine, tmp_path / "results")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))      # every temporary folder of the command lands here
    if damage.run:
        damage.run(root / VICTIM)
    bundled = forge_bundle(root / VICTIM, damage) if BUNDLE in argv else None
    before = files(tmp_path)
    exit_code = main([str(bundled) if a == BUNDLE else a for a in argv] + ["--results-dir", str(root)])
    out, err = capsys.readouterr()
    assert exit_code == code, (out, err)
    assert "Traceback" not in out + err
    if code == 2:
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("kit: error: "), err
        assert says in err
    elif code == 1:
        problem, verdict = out.splitlines()
        assert err == "" and verdict == f"{bundled}: FAILED" and says in problem, out
    else:                                     # a table, whose notes wrap to the terminal's width
        assert err == "" and says in " ".join(out.split()), out
    assert files(tmp_path) == before          # nothing written, nothing left in TMPDIR


@pytest.mark.parametrize("damage", [BAD_BYTES, DEEP_MANIFEST, in_run(MANIFEST, lambda d: b"\xff" + d),
                                    sparse(MANIFEST, 250 * MiB)], ids=["events", "deep", "bad-bytes", "big"])
def test_a_damaged_run_does_not_hide_the_others(pristine, tmp_path, capsys, damage):
    root = shutil.copytree(pristine, tmp_path / "results")
    damage.run(root / VICTIM)
    assert main(["ls", "--results-dir", str(root)]) == 0
    out, _ = capsys.readouterr()
    listed = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert set(listed) == {"good", VICTIM} and "damaged" not in listed["good"]
    assert main(["table", "good", "--results-dir", str(root)]) == 0 and "Table 1:" in capsys.readouterr().out


def test_a_bundles_other_logs_and_figures_are_hashed_not_written(pristine, tmp_path):
    """Only what the checks read lands in TMPDIR: the records, and the server logs (each at most
    SERVER_LOG_LIMIT) that runs before events schema 3 take their load breakdowns from; any other member is
    hashed and scanned in the stream."""
    run_dir = shutil.copytree(pristine, tmp_path / "results") / VICTIM
    (run_dir / "l1/r1/workload.log").write_text("progress lines\n")
    with bundle.unpack(forge_bundle(run_dir)) as unpacked:
        on_disk = {p.relative_to(unpacked.root).as_posix() for p in unpacked.root.rglob("*") if p.is_file()}
        assert "l1/r1/workload.log" in unpacked.sha256 and "l1/r1/workload.log" not in on_disk
        assert {MANIFEST, EVENTS, STATUS, bundle.SUMS, "tables/table1.md", "l1/r1/server-A.log"} <= on_disk


def test_members_past_the_total_budget_are_not_read(pristine, tmp_path, monkeypatch):
    """Many members each under its limit: reading stops at the total budget (patched small here)."""
    monkeypatch.setattr(archive, "TOTAL_LIMIT", 3 * MiB)
    run_dir = shutil.copytree(pristine, tmp_path / "results") / VICTIM
    for k in range(8):
        (run_dir / f"l1/r1/server-{k}.log").write_bytes(bytes(MiB))
    problems = bundle.verify_bundle(forge_bundle(run_dir))
    assert any("members add up to more than 3 MiB" in p and "the rest is not read" in p for p in problems), problems
    assert len(problems) <= bundle.MAX_PROBLEMS + 1
