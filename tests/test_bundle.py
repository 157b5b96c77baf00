"""kit.bundle on fabricated runs: round trip, tamper detection, determinism, incomplete runs,
secret redaction, and no partial archives."""
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile

import pytest

from fabricate import fabricate_run
from kit import bundle, plot, results
from kit.bundle import render_outputs
from kit.errors import BadInput, BadRecord
from kit.results import archive

TOKEN = "hf_" + "Zq7" * 11          # 33 alphanumerics after hf_
OTHER_SECRET = "s3cr3t-value-for-an-api-key"


def members(path):
    """{member name: bytes} of a bundle."""
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def rewrite(path, edit, resum=False):
    """Rewrite a bundle: edit(dict rel->bytes) changes the files; resum=True recomputes SHA256SUMS
    (a careful forger), so only the deeper checks can notice."""
    found = members(path)
    top = next(iter(found)).split("/")[0]
    files = {name.split("/", 1)[1]: data for name, data in found.items()}
    edit(files)
    if resum:
        files[bundle.SUMS] = "".join(f"{hashlib.sha256(d).hexdigest()}  {r}\n"
                                     for r, d in sorted(files.items()) if r != bundle.SUMS).encode()
    path.unlink()
    assert archive.write_targz(path, top, files) == []
    return path


def fake_figures(run, numbers):
    """Stand-in for kit.plot.plot_run: the figure files, with made-up bytes (tests/test_plot.py draws real
    ones and checks them); a bundle only carries them."""
    paths = []
    for name in plot.expected_figures(run, numbers):
        path = run.source / "figures" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(f"figure {name} of {sorted(numbers)}".encode())
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def no_drawing(monkeypatch):
    monkeypatch.setattr(plot, "plot_run", fake_figures)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One fabricated run (tables 1 and 4, 2 repeats) with tables and (stand-in) figures."""
    run_dir = fabricate_run(tmp_path_factory.mktemp("pristine"), tables=(1, 4), repeat=2)
    run = results.load_run(run_dir)
    results.write_tables(run)
    fake_figures(run, run.tables)
    return run_dir


@pytest.fixture
def run_dir(rendered, tmp_path):
    """A private copy of the rendered run."""
    return shutil.copytree(rendered, tmp_path / "results" / rendered.name)


@pytest.fixture(scope="module")
def bundled(rendered, tmp_path_factory):
    """The rendered run's bundle, made once."""
    run_dir = shutil.copytree(rendered, tmp_path_factory.mktemp("bundled") / rendered.name)
    return bundle.make_bundle(run_dir, render=render_outputs)


@pytest.fixture
def made(bundled, run_dir):
    """A private copy of that bundle, where `kit bundle` puts it: beside the private copy of the run."""
    return shutil.copy(bundled, run_dir.parent / bundled.name)


def test_round_trip(run_dir):
    made = bundle.make_bundle(run_dir, render=render_outputs)
    assert made == run_dir.parent / f"{run_dir.name}.tar.gz"
    assert bundle.verify_bundle(made) == []
    names = set(members(made))
    top = run_dir.name
    for rel in ["manifest.json", "SHA256SUMS", "tables/table1.md", "tables/table1.json", "tables/table4.md",
                "tables/table4.json", *[f"figures/{f}" for f in plot.expected_figures(results.load_run(run_dir), [1, 4])]]:
        assert f"{top}/{rel}" in names
    for arm in ("l1", "nosleep", "l2"):
        for k in (1, 2):
            for f in ("events.jsonl", "env.json", "status.json", "server-A.log", "server-B.log", "workload.log"):
                assert f"{top}/{arm}/r{k}/{f}" in names
    assert not list(run_dir.parent.glob("*.part"))


def test_sha256sums_lists_every_file_sorted(made):
    found = members(made)
    top = next(iter(found)).split("/")[0]
    lines = found[f"{top}/SHA256SUMS"].decode().splitlines()
    paths = [line.split("  ", 1)[1] for line in lines]
    assert paths == sorted(paths)
    assert set(paths) == {n.split("/", 1)[1] for n in found} - {"SHA256SUMS"}
    for line in lines:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256(found[f"{top}/{rel}"]).hexdigest() == digest


def test_bundling_rerenders_tables_and_missing_figures_only(run_dir, monkeypatch):
    (run_dir / "tables" / "table1.md").write_text("stale\n")
    drawn = []
    monkeypatch.setattr(plot, "plot_run", lambda run, numbers: drawn.append(list(numbers)) or fake_figures(run, numbers))
    path = bundle.make_bundle(run_dir, render=render_outputs)
    assert drawn == [] and bundle.verify_bundle(path) == []         # tables re-rendered, figures all there
    (run_dir / "figures" / "table4-bars.png").unlink()
    bundle.make_bundle(run_dir, render=render_outputs)
    assert drawn == [[1, 4]]


def test_an_arm_run_is_bundled_with_the_tables_kit_run_wrote_rerendered(tmp_path):
    """`kit run --arm l1` shows Tables 1-4 (each uses l1); bundling refreshes those same four."""
    run_dir = fabricate_run(tmp_path, (), arms=("l1",), run_id="arm-l1")
    assert results.load_run(run_dir).tables == [1, 2, 3, 4]
    results.write_tables(results.load_run(run_dir))
    (run_dir / "tables" / "table2.json").write_text("{}\n")                  # as an older kit left it
    path = bundle.make_bundle(run_dir, render=render_outputs, figures=False)
    assert bundle.verify_bundle(path) == [] and json.loads((run_dir / "tables" / "table2.json").read_text())["table"] == 2


@pytest.mark.parametrize("edit, resum, expected", [
    (lambda f: f.__setitem__("l1/r1/events.jsonl", f["l1/r1/events.jsonl"].replace(b'"ok": true', b'"ok": false', 1)),
     False, "checksum mismatch (file changed): l1/r1/events.jsonl"),
    (lambda f: f.pop("nosleep/r2/server-B.log"), False, "missing file (listed in SHA256SUMS): nosleep/r2/server-B.log"),
    (lambda f: f.__setitem__("l2/r1/extra.txt", b"sneaked in\n"),
     False, "extra file (not in SHA256SUMS): l2/r1/extra.txt"),
    (lambda f: f.pop("SHA256SUMS"), False, "SHA256SUMS missing"),
    (lambda f: f.__setitem__("tables/table1.md", f["tables/table1.md"].replace(b"0.", b"9.", 1)),
     True, "table differs from one re-rendered from the events: tables/table1.md"),
    (lambda f: f.pop("tables/table4.json"), True, "table missing: tables/table4.json"),
    (lambda f: f.__setitem__("l2/r2/events.jsonl", f["l2/r2/events.jsonl"] + b'{"kind": "nap"}\n'),
     True, "l2/r2/events.jsonl: bad events: l2/r2/events.jsonl:27: missing field 'run'"),
    (lambda f: f.__setitem__("manifest.json", json.dumps({k: v for k, v in json.loads(f["manifest.json"]).items()
                                                          if k != "models"}).encode()),
     True, "manifest.json: missing key 'models'"),
])
def test_tampering_is_named(made, edit, resum, expected):
    rewrite(made, edit, resum)
    problems = bundle.verify_bundle(made)
    assert expected in problems, problems


def test_edited_events_with_fixed_sums_change_the_tables(made):
    """A forger who edits a timing and fixes SHA256SUMS is caught by the table re-render."""
    def slower(files):
        lines = files["l1/r1/events.jsonl"].decode().splitlines(keepends=True)
        rec = json.loads(lines[6])
        assert rec["kind"] == "wake"
        rec["duration_s"] = 42.0
        lines[6] = json.dumps(rec, sort_keys=True) + "\n"
        files["l1/r1/events.jsonl"] = "".join(lines).encode()
    rewrite(made, slower, resum=True)
    problems = bundle.verify_bundle(made)
    assert "table differs from one re-rendered from the events: tables/table1.md" in problems


def test_not_a_bundle_or_truncated(tmp_path, made):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip at all")
    assert len(bundle.verify_bundle(junk)) == 1 and "not a readable tar.gz" in bundle.verify_bundle(junk)[0]
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(made.read_bytes()[: len(made.read_bytes()) // 2])
    (problem,) = bundle.verify_bundle(cut)
    assert "not a readable tar.gz" in problem


def test_a_renamed_copy_of_a_run_does_not_verify(tmp_path, made):
    """Another run's folder and manifest id, with fixed sums: the events still name the original run."""
    def rename(files):
        m = json.loads(files["manifest.json"])
        m["run_id"] = "someone-elses-run"
        files["manifest.json"] = json.dumps(m).encode()
    copy = tmp_path / "someone-elses-run.tar.gz"
    shutil.copy(made, copy)
    found = members(copy)
    files = {name.split("/", 1)[1]: data for name, data in found.items()}
    rename(files)
    files[bundle.SUMS] = "".join(f"{hashlib.sha256(d).hexdigest()}  {r}\n"
                                 for r, d in sorted(files.items()) if r != bundle.SUMS).encode()
    copy.unlink()
    assert archive.write_targz(copy, "someone-elses-run", files) == []
    problems = bundle.verify_bundle(copy)
    assert any("events of run '20250101-000000-t14', not 'someone-elses-run'" in p for p in problems), problems


def test_oversized_member_is_refused_without_reading_it(tmp_path):
    """A small bundle holding a 300 MiB zero-filled member: refused from its header, memory stays small."""
    import resource
    path = tmp_path / "bomb.tar.gz"
    info = tarfile.TarInfo("run/huge.log")
    info.size = 300 * 2**20
    zeros = gzip.compress(bytes(2**20), compresslevel=1)
    with open(path, "wb") as f:     # gzip members one after another are one stream: compress 1 MiB once, not 300
        f.write(gzip.compress(info.tobuf()))
        f.write(zeros * 300)
        f.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))       # the end-of-archive blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    problems = bundle.verify_bundle(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert any("member too large (300 MiB" in p and "huge.log" in p for p in problems), problems
    assert grown_mib < 200


def test_a_huge_tar_header_is_refused_without_reading_it(tmp_path):
    """A pax header twice the size of the largest read (tarfile reads a header whole): a few KiB of gzip
    could otherwise make it hold hundreds of MiB."""
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, compresslevel=1) as tar:
        info = tarfile.TarInfo("run/x.log")
        info.pax_headers = {"comment": "a" * (2 * archive.READ_LIMIT)}
        tar.addfile(info, io.BytesIO(b""))
    (problem,) = bundle.verify_bundle(path)
    read = re.search(r"not a readable tar\.gz \(a header or block of (\d+) bytes", problem)
    assert read and int(read[1]) > 2 * archive.READ_LIMIT, problem


def test_deterministic_bytes_even_after_rerendering(run_dir, made):
    first = made.read_bytes()
    assert bundle.make_bundle(run_dir).read_bytes() == first
    shutil.rmtree(run_dir / "tables")                      # tables re-rendered from scratch
    results.write_tables(results.load_run(run_dir), [1, 4])
    assert bundle.make_bundle(run_dir).read_bytes() == first
    assert first[3] & 0x08 == 0 and first[4:8] == b"\0\0\0\0"   # gzip: no file name, mtime 0
    with tarfile.open(made, "r:gz") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}


def test_incomplete_run_refused_unless_allowed(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(complete=False, ended=None)
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    with pytest.raises(BadInput, match="incomplete") as refused:
        bundle.make_bundle(run_dir, render=render_outputs)
    assert f"kit run --resume {run_dir.name}" in refused.value.hint
    assert list(run_dir.parent.iterdir()) == [run_dir]       # nothing written, not even a temp file

    # its tables still say "complete": the self-check refuses a bundle that would not verify
    with pytest.raises(BadRecord, match=r"table differs .*tables/table1\."):
        bundle.make_bundle(run_dir, allow_incomplete=True)
    assert list(run_dir.parent.iterdir()) == [run_dir]

    path = bundle.make_bundle(run_dir, allow_incomplete=True, render=render_outputs)
    found = members(path)
    bundled = json.loads(found[f"{run_dir.name}/manifest.json"])
    assert bundled["bundled_incomplete"] is True and bundled["complete"] is False
    assert "bundled_incomplete" not in json.loads((run_dir / "manifest.json").read_text())  # run dir untouched
    assert bundle.verify_bundle(path) == []


def test_incomplete_manifest_without_mark_is_a_problem(run_dir):
    path = bundle.make_bundle(run_dir, render=render_outputs)
    def unmark(files):
        m = json.loads(files["manifest.json"])
        m["complete"] = False
        files["manifest.json"] = json.dumps(m).encode()
    rewrite(path, unmark, resum=True)
    assert "manifest.json: run is incomplete but not marked bundled_incomplete" in bundle.verify_bundle(path)


def test_secrets_are_redacted(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("MY_SERVICE_API_KEY", OTHER_SECRET)
    log = run_dir / "l1" / "r1" / "server-A.log"
    log.write_text(log.read_text() + f"DEBUG using token {TOKEN} for hub\nDEBUG key={OTHER_SECRET}\n")
    (run_dir / "nosleep" / "r2" / "workload.log").write_text(f"HF_TOKEN={TOKEN}\n")
    other = "hf_" + "A1b2C3d4E5" * 3                       # token-shaped, in no variable
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["command"] += ["--hf-token", TOKEN, "--note", other]
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    path = bundle.make_bundle(run_dir, render=render_outputs)
    err = capsys.readouterr().err
    assert "redacted" in err and "l1/r1/server-A.log" in err and "manifest.json" in err
    assert TOKEN not in err
    found = members(path)
    for name, data in found.items():
        for secret in (TOKEN, OTHER_SECRET, other):
            assert secret.encode() not in data, (name, secret)
    assert b"[REDACTED]" in found[f"{run_dir.name}/l1/r1/server-A.log"]
    raw = gzip.decompress(path.read_bytes())
    assert TOKEN.encode() not in raw and OTHER_SECRET.encode() not in raw
    assert TOKEN in log.read_text()                       # only the bundle copy is redacted
    assert bundle.verify_bundle(path) == []


def test_no_partial_archive_on_failure(run_dir, monkeypatch):
    def broken(self, tarinfo, fileobj=None):
        raise OSError("disk full")
    bundle.make_bundle(run_dir, render=render_outputs)
    target = run_dir.parent / f"{run_dir.name}.tar.gz"
    target.unlink()
    monkeypatch.setattr(tarfile.TarFile, "addfile", broken)
    with pytest.raises(OSError, match="disk full"):
        bundle.make_bundle(run_dir)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name]


def test_secret_names():
    env = {"HF_TOKEN": "x" * 20, "HUGGING_FACE_HUB_TOKEN": "y" * 20, "AWS_SECRET_ACCESS_KEY": "z" * 20,
           "DB_PASSWORD": "p" * 20, "PATH": "/usr/bin:/bin", "KEYBOARD": "k" * 20, "SHORT_KEY": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    names = {k for k, _ in bundle.secret_values(env)}
    assert names == {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"}
    data, hits = bundle.redact(io.BytesIO(b"a hf_" + b"x" * 30 + b" b").getvalue(), [])
    assert data == b"a [REDACTED] b" and hits == ["hf_ token"]


def test_a_bundle_without_figures_still_verifies(run_dir):
    path = bundle.make_bundle(run_dir, render=lambda run: results.write_tables(run), figures=False)
    names = set(members(path))
    assert not any("/figures/" in n for n in names) and f"{run_dir.name}/tables/table1.md" in names
    assert bundle.verify_bundle(path) == []


def test_a_bundle_made_elsewhere_verifies_without_its_model_folders(run_dir):
    m = json.loads((run_dir / "manifest.json").read_text())
    m["options"]["model_a"] = "/models/only/on/the/gpu/host"
    (run_dir / "manifest.json").write_text(json.dumps(m))
    assert bundle.verify_bundle(bundle.make_bundle(run_dir, render=render_outputs)) == []
