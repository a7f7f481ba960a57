"""Everything trainwall writes (issue 13, the writer's half): atomic files that a crash
cannot truncate, outputs that never land on or around an input or an earlier run's
answer keys, class outputs named injectively, class folders whose odd entries are
skipped unopened and listed, a Gradescope ``run_autograder`` that always leaves a
results *file*, and hostile strings that come out inert in every results format, every
CSV and every terminal line.

The property tests inject a crash half-way through a write (``core.outputs._write``
writes half the bytes, then raises) at every write of a run, for every writer: the
class results in each format, ``summary.csv``, ``scores.png``, one results file,
``generate``'s handouts / keys / ``index.csv``, the autograder bundle and a figure.
"""

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from platform_schemas import GRADESCOPE, PRAIRIELEARN
from test_grading import optimal_submission, submission_text
from trainwall.challenges import classroom, grading
from trainwall.challenges.mission import mission
from trainwall.challenges.variants import generate, write
from trainwall.cli import main
from trainwall.core import outputs
from trainwall.core.fileformats import safe_name

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("text", "json", "gradescope", "prairielearn", "junit")
SUFFIX = {"text": ".txt", "json": ".json", "gradescope": ".json", "prairielearn": ".json", "junit": ".xml"}


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary files or staging folders a failed write left behind."""
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".part") or p.name.startswith(".trainwall-")]


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


class Crash(Exception):
    """The injected crash (not an OSError: nothing may mistake it for a refused path)."""


def crash_at(monkeypatch, number: int) -> dict:
    """Make the ``number``-th atomic write of this test write half its bytes and crash."""
    calls = {"n": 0}
    real = outputs._write

    def half_then_crash(handle, chunks):
        calls["n"] += 1
        if calls["n"] == number:
            payload = b"".join(chunks)
            handle.write(payload[: len(payload) // 2])
            handle.flush()
            raise Crash(f"injected crash in write {number}")
        real(handle, chunks)

    monkeypatch.setattr(outputs, "_write", half_then_crash)
    monkeypatch.delenv("TRAINWALL_DEBUG", raising=False)
    return calls


def restore(folder: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


# --- 1. atomic writes ------------------------------------------------------------------------------

def test_atomic_write_survives_a_crash_half_way(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    outputs.atomic_write(path, '{"score": 1}\n')
    path.chmod(0o640)
    crash_at(monkeypatch, 1)
    with pytest.raises(Crash):
        outputs.atomic_write(path, '{"score": 0, "much": "longer"}\n')
    assert path.read_text() == '{"score": 1}\n' and not leftovers(tmp_path)
    monkeypatch.undo()
    outputs.atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640   # the mode is kept
    fresh = outputs.atomic_write(tmp_path / "fresh.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask                          # not mkstemp's 0600


@pytest.fixture
def small_class(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "alice.toml").write_text(optimal_submission("mobile/1"))
    (folder / "bob.toml").write_text(submission_text("mobile/1"))          # breaks the memory wall
    return folder


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_crash_in_any_class_write_leaves_the_previous_outputs_whole(tmp_path, monkeypatch, small_class, fmt):
    """Every write of a class run (each results file and its record, summary.csv, scores.png,
    checks.png) crashed in turn: each output is the previous run's or the new run's, complete;
    nothing is truncated. Alice's submission did not change: her results are current, kept."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert main(["grade", str(small_class), "--format", fmt, "--output", str(out), "--jobs", "1"]) == 0
    before = tree(out)
    (small_class / "bob.toml").write_text(optimal_submission("mobile/1"))    # the class changes
    assert main(["grade", str(small_class), "--format", fmt, "--output", str(fresh), "--jobs", "1"]) == 0
    after = tree(fresh)
    alice, bob, records = f"alice.toml{SUFFIX[fmt]}", f"bob.toml{SUFFIX[fmt]}", ".trainwall/records/"
    assert before != after and set(before) == set(after) == {
        alice, bob, f"{records}{alice}.json", f"{records}{bob}.json", "summary.csv", "scores.png", "checks.png"}
    kept = [alice, f"{records}{alice}.json"]
    assert all(before[name] == after[name] for name in kept)
    order = [bob, f"{records}{bob}.json", "summary.csv", "scores.png", "checks.png"]   # as written
    for number in range(1, len(order) + 1):
        restore(out, before)
        calls = crash_at(monkeypatch, number)
        code, _, err = cli("grade", small_class, "--format", fmt, "--output", out, "--jobs", 1)
        monkeypatch.undo()
        assert code == 1 and "injected crash" in err and calls["n"] == number
        now = tree(out)
        assert set(now) == set(before) and not leftovers(out)
        for index, name in enumerate(order):        # written before the crash: new; the crashed one and later: old
            assert now[name] == (after[name] if index < number - 1 else before[name]), (number, name)


def test_a_crash_writing_one_results_file_keeps_the_previous_one(tmp_path, monkeypatch):
    submission, target = tmp_path / "s.toml", tmp_path / "r.json"
    submission.write_text(optimal_submission("mobile/1"))
    assert main(["grade", str(submission), "--format", "json", "--output", str(target)]) == 0
    before = target.read_bytes()
    submission.write_text("{not toml")
    crash_at(monkeypatch, 1)
    code, _, err = cli("grade", submission, "--format", "json", "--output", target)
    assert code == 1 and "injected crash" in err
    assert target.read_bytes() == before and not leftovers(tmp_path)


def test_a_crash_writing_a_figure_keeps_the_previous_one(tmp_path, monkeypatch):
    figure = tmp_path / "w.svg"
    assert main(["plot", "waterfall", str(ROOT / "examples" / "mobile.toml"), "-o", str(figure)]) == 0
    before = figure.read_bytes()
    crash_at(monkeypatch, 1)
    code, _, _ = cli("plot", "waterfall", ROOT / "examples" / "tiny.toml", "-o", figure)
    assert code == 1 and figure.read_bytes() == before and not leftovers(tmp_path)


@pytest.fixture(scope="module")
def drawn():
    """Four real mobile/1 variants, for roster ids a spreadsheet would run as formulas."""
    students = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1)", "-2"]
    return mission("mobile/1"), generate(mission("mobile/1"), 1, students, jobs=1, progress=False)


def test_a_crash_in_any_generate_write_leaves_the_previous_set_whole(tmp_path, monkeypatch, drawn):
    m, variants = drawn
    out = tmp_path / "v"
    write(variants, m, 1, out)
    before = tree(out)
    writes = 3 * 2 + 1                                  # mission.toml, submission.toml, key each; index.csv
    for number in range(1, writes + 1):
        crash_at(monkeypatch, number)
        with pytest.raises(Crash):
            write(variants[:2], m, 2, out, force=True)   # another seed and fewer students
        monkeypatch.undo()
        assert tree(out) == before and not leftovers(out), number
    write(variants[:2], m, 2, out, force=True)
    assert sorted(p.name for p in (out / "keys").iterdir()) == sorted(
        [f"{safe_name(v.student)}.json" for v in variants[:2]] + ["index.csv"])   # never two runs mixed
    assert len(list((out / "handouts").iterdir())) == 2 and not leftovers(out)


def test_a_crash_in_any_bundle_write_leaves_the_previous_bundle_whole(tmp_path, monkeypatch):
    from trainwall.challenges.autograder import write_bundle

    out = tmp_path / "bundle"
    write_bundle("mobile/1", out, "trainwall==0.1.0")
    before = tree(out)
    for number in (1, 2, 3):                             # the key, setup.sh, run_autograder
        crash_at(monkeypatch, number)
        with pytest.raises(Crash):
            write_bundle("tiny/1", out, "trainwall==0.1.0")
        monkeypatch.undo()
        assert tree(out) == before and not leftovers(out), number
    write_bundle("tiny/1", out, "trainwall==0.1.0")
    assert sorted(p.name for p in (out / "keys").iterdir()) == ["tiny-1.json"]        # keys never mix
    assert os.access(out / "run_autograder", os.X_OK)


# --- 2. never over an input or an earlier run's keys -----------------------------------------------

def test_generate_refuses_a_folder_with_earlier_keys_unless_forced(tmp_path, monkeypatch):
    out = tmp_path / "v"
    assert main(["generate", "mobile/1", "--count", "2", "--seed", "1", "--out", str(out), "--jobs", "1"]) == 0
    before = tree(out)
    code, _, err = cli("generate", "mobile/1", "--count", 3, "--seed", 2, "--out", out, "--jobs", 1)
    assert code == 2 and tree(out) == before
    assert "2 answer keys and index.csv in keys/" in err and "2 handouts" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    roster = tmp_path / "roster.csv"
    roster.write_text("student\nzoe\n")
    code, _, err = cli("generate", "mobile/1", "--roster", roster, "--seed", 2, "--out", out, "--jobs", 1,
                       "--force")
    assert code == 0, err
    assert sorted(p.name for p in (out / "keys").iterdir()) == ["index.csv", "zoe.json"]
    assert [r["student"] for r in csv.DictReader((out / "keys" / "index.csv").open())] == ["zoe"]
    assert [p.name for p in (out / "handouts").iterdir()] == ["zoe"]


def test_generate_checks_its_output_before_any_work(tmp_path, monkeypatch):
    import trainwall.challenges.variants as variants

    monkeypatch.setattr(variants, "generate", lambda *a, **k: pytest.fail("generated before --out was checked"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = cli("generate", "mobile/1", "--count", 1, "--seed", 1, "--out", afile)
    assert code == 2 and "not a folder" in err and afile.read_text() == "x"
    code, _, err = cli("generate", "mobile/1", "--count", 1, "--seed", 1, "--out", afile / "v")
    assert code == 2 and "is a file, not a folder" in err
    keys = tmp_path / "v" / "keys"
    keys.mkdir(parents=True)
    roster = keys / "roster.csv"
    roster.write_text("student\nab\n")
    code, _, err = cli("generate", "mobile/1", "--roster", roster, "--seed", 1, "--out", tmp_path / "v", "--force")
    assert code == 2 and "holds the input" in err and roster.is_file()        # --force never deletes an input
    code, _, err = cli("generate", "mobile/1", "--count", 1, "--seed", 1, "--out", "")
    assert code == 2 and "empty" in err


@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_class_output_never_overlaps_the_submissions(tmp_path, monkeypatch, small_class, where):
    monkeypatch.setattr(grading, "grade_file", lambda *a: pytest.fail("graded before --output was checked"))
    out = {"same": small_class, "inside": small_class / "results", "holds": small_class.parent}[where]
    before = tree(small_class.parent)
    code, _, err = cli("grade", small_class, "--output", out, "--jobs", 1)
    assert code == 2 and "overlaps the input folder" in err and len(err.strip().splitlines()) == 1
    assert tree(small_class.parent) == before


def test_output_paths_of_the_wrong_kind_fail_before_grading(tmp_path, monkeypatch, small_class):
    monkeypatch.setattr(grading, "grade_file", lambda *a: pytest.fail("graded before --output was checked"))
    afile = tmp_path / "afile.json"
    afile.write_text("keep")
    submission = small_class / "alice.toml"
    keep = submission.read_bytes()
    for argv, expected in [((small_class, "--output", afile), "not a folder"),
                           ((submission, "--output", tmp_path), "is a folder"),
                           ((submission, "--output", afile / "r.json"), "is a file, not a folder"),
                           ((submission, "--output", submission), "is an input"),
                           ((submission, "--output", small_class / "." / "alice.toml"), "is an input")]:
        code, _, err = cli("grade", *argv, "--jobs", 1) if argv[0] == small_class else cli("grade", *argv)
        assert code == 2 and expected in err, (argv, err)
    assert afile.read_text() == "keep" and submission.read_bytes() == keep


def test_a_results_file_never_lands_in_the_answer_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "grade_file", lambda *a: pytest.fail("graded before --output was checked"))
    keys = tmp_path / "v" / "keys"
    keys.mkdir(parents=True)
    submission = tmp_path / "s.toml"
    submission.write_text(optimal_submission("mobile/1"))
    code, _, err = cli("grade", submission, "--mission", tmp_path / "v", "--output", keys / "r.json")
    assert code == 2 and "overlaps the input folder" in err and not (keys / "r.json").exists()


def test_the_bundle_never_replaces_a_generate_output(tmp_path):
    out = tmp_path / "v"
    assert main(["generate", "mobile/1", "--count", "1", "--seed", "1", "--out", str(out), "--jobs", "1"]) == 0
    before = tree(out)
    for argv in (["mobile/1", "--out", out], [out, "--out", out], [out / "keys", "--out", out]):
        code, _, err = cli("autograder", "gradescope", *argv)
        assert code == 2 and err.startswith("trainwall: "), err
    assert tree(out) == before
    mine = tmp_path / "mine"
    (mine / "keys").mkdir(parents=True)
    (mine / "keys" / "notes.txt").write_text("keep")
    code, _, err = cli("autograder", "gradescope", "mobile/1", "--out", mine)
    assert code == 2 and "not answer keys" in err and (mine / "keys" / "notes.txt").read_text() == "keep"


# --- 3. class outputs named injectively -----------------------------------------------------------

def test_adversarial_names_get_one_results_file_each(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    names = ["x y.json", "x_y.json", safe_name("x y.json"), "X_Y.JSON", "summary.csv", "scores", "x?y.json"]
    for name in names:
        (folder / name).write_text(json.dumps({"mission": "mobile/1", "student": name}))
    out = tmp_path / "out"
    assert main(["grade", str(folder), "--format", "json", "--output", str(out), "--jobs", "1"]) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert sorted(r["file"] for r in rows) == sorted(names)
    made = [r["results"] for r in rows]
    assert len({m.casefold() for m in made}) == len(names)                   # distinct, even ignoring case
    for row in rows:
        assert json.loads((out / row["results"]).read_text())["source"] == str(folder / row["file"])
    assert len(list(out.iterdir())) == len(names) + 4          # plus summary.csv, scores.png, checks.png, .trainwall


def test_unique_names_never_repeat_or_take_a_reserved_name():
    names = ["a b", "a_b", safe_name("a b"), "A_B", "summary", "Summary"]
    made = outputs.unique_names(names, ".csv", reserved=["summary.csv"])
    assert len({m.casefold() for m in made} | {"summary.csv"}) == len(names) + 1
    assert made == outputs.unique_names(names, ".csv", reserved=["summary.csv"])      # deterministic


# --- 4. a class folder's odd entries: skipped unopened, every one listed ---------------------------

def test_odd_entries_are_skipped_unopened_and_listed(tmp_path, monkeypatch):
    folder = tmp_path / "class"
    folder.mkdir()
    secret = tmp_path / "secret.toml"
    secret.write_text('mission = "SECRET-PASSWORD-1234"\n')
    (folder / "alice.toml").write_text(optimal_submission("mobile/1"))
    (folder / "outside.toml").symlink_to(secret)
    (folder / "zero.toml").symlink_to("/dev/zero")
    (folder / "dangling.toml").symlink_to(tmp_path / "nothing.toml")
    (folder / "loop1.toml").symlink_to(folder / "loop2.toml")
    (folder / "loop2.toml").symlink_to(folder / "loop1.toml")
    (folder / "inside.toml").symlink_to(folder / "alice.toml")                 # inside the folder: graded
    (folder / "nested").mkdir()
    (folder / "nested" / "x.toml").write_text(optimal_submission("mobile/1"))
    (folder / ".hidden.toml").write_text("x")
    (folder / "locked.toml").write_text(optimal_submission("mobile/1"))
    os.mkfifo(folder / "pipe.toml")
    real_access = os.access
    monkeypatch.setattr(classroom.os, "access",
                        lambda p, m: not str(p).endswith("locked.toml") and real_access(p, m))   # root reads all
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("a FIFO or a device was opened"))
    signal.alarm(60)
    try:
        code, out_text, err = cli("grade", folder, "--format", "json", "--output", tmp_path / "out", "--jobs", 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert code == 0, err
    rows = {r["file"]: r for r in csv.DictReader((tmp_path / "out" / "summary.csv").open())}
    assert set(rows) == set(os.listdir(folder))                                # every entry has a row
    reasons = {"outside.toml": "outside the folder", "zero.toml": "outside the folder",
               "dangling.toml": "dangling", "loop1.toml": "cannot be followed", "loop2.toml": "cannot be followed",
               "nested": "a folder", ".hidden.toml": "hidden", "locked.toml": "not readable",
               "pipe.toml": "FIFO"}
    for name, reason in reasons.items():
        assert rows[name]["gradable"] == "False" and rows[name]["error"].startswith("skipped: "), name
        assert reason in rows[name]["error"] and rows[name]["results"] == "", name
    assert rows["alice.toml"]["gradable"] == rows["inside.toml"]["gradable"] == "True"
    assert "9 entries skipped" in out_text
    everything = b"".join(tree(tmp_path / "out").values())
    assert b"SECRET-PASSWORD" not in everything


def test_entry_kinds_are_named():
    assert "device" in classroom._kind(stat.S_IFCHR) and "device" in classroom._kind(stat.S_IFBLK)
    assert "socket" in classroom._kind(stat.S_IFSOCK) and classroom._kind(stat.S_IFREG) is None


# --- 5. the Gradescope run_autograder --------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    assert main(["autograder", "gradescope", "mobile/1", "--out", str(out)]) == 0
    return out


def run_autograder(bundle: Path, root: Path, build, python: str = sys.executable) -> dict:
    """Run the bundle's run_autograder on a Gradescope-shaped tree; ``build(submission_folder)`` fills it."""
    (root / "submission").mkdir(parents=True)
    shutil.copytree(bundle, root / "source")
    build(root / "submission")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "TRAINWALL_PYTHON": python}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = root / "results" / "results.json"
    assert results.is_file() and not results.is_symlink()
    data = json.loads(results.read_text())
    jsonschema.validate(data, GRADESCOPE)
    return data


def test_a_folder_named_like_a_submission_is_not_graded(bundle, tmp_path):
    def build(sub):
        (sub / "answer.toml").mkdir()
        (sub / "answer.toml" / "inner.toml").write_text(optimal_submission("mobile/1"))
        (sub / "b.toml").write_text(optimal_submission("mobile/1"))

    assert run_autograder(bundle, tmp_path / "autograder", build)["score"] == pytest.approx(1.0)


def test_suffixes_match_in_any_case(bundle, tmp_path):
    plan = json.dumps(tomllib.loads(optimal_submission("mobile/1")))
    assert run_autograder(bundle, tmp_path / "autograder",
                          lambda sub: (sub / "ANSWER.JSON").write_text(plan))["score"] == pytest.approx(1.0)


def test_nothing_to_grade_still_leaves_a_results_file(bundle, tmp_path):
    def build(sub):
        (sub / "notes.md").write_text("no submission")
        (sub / "answer.yaml").mkdir()
        (sub / "link.toml").symlink_to(sub.parent / "source" / "keys" / "mobile-1.json")    # the answers: never
        (sub.parent / "results").mkdir()
        (sub.parent / "results" / "results.json").mkdir()                                   # even over a folder

    data = run_autograder(bundle, tmp_path / "autograder", build)
    assert data["score"] == 0 and "No submission file" in data["output"] and data["output_format"] == "text"
    assert "lock_answers" not in json.dumps(data)


def test_a_grader_that_cannot_start_still_leaves_a_results_file(bundle, tmp_path):
    data = run_autograder(bundle, tmp_path / "autograder",
                          lambda sub: (sub / "a.toml").write_text(optimal_submission("mobile/1")),
                          python=shutil.which("false"))
    assert data["score"] == 0 and "could not start trainwall (exit 1)" in data["output"]


# --- 6. hostile strings come out inert -------------------------------------------------------------

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>\nFAKE: score 1\x1b[31m\u202e\u2066=cmd|' /C calc'!A0"
CONTROLS = ["\x1b", "\x00", "\u202e", "\u2066", "\u200f", "\u2028", "\r"]


def hostile_submissions() -> dict[str, str]:
    base = optimal_submission("mobile/1")
    value = json.dumps(HOSTILE)
    return {"student.toml": base.replace('student = "ab123"', f"student = {value}"),
            "mission.toml": base.replace('mission = "mobile/1"', f"mission = {value}"),
            "prediction.toml": base.replace("[predictions]", f"[predictions]\n{value} = 1"),
            "field.toml": base.replace("[configuration.training]", f"[configuration.training]\n{value} = 1"),
            "value.toml": submission_text("mobile/1", {"optimizer": HOSTILE}),
            f"name{HOSTILE.replace('/', '_')}.toml": base}


def strings_of(fmt: str, body: str) -> list[str]:
    """Every string a reader of the results file gets."""
    if fmt == "text":
        return [body]
    if fmt == "junit":
        root = ET.fromstring(body)                                     # well-formed XML 1.0
        return [s for e in root.iter() for s in (e.text or "", *e.attrib.values())]
    found = []

    def walk(x):
        if isinstance(x, str):
            found.append(x)
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.loads(body))
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_strings_come_out_inert_in_every_format(tmp_path, fmt):
    for name, text in hostile_submissions().items():
        path = tmp_path / name
        path.write_text(text)
        target = tmp_path / f"{fmt}.out"
        code, _, err = cli("grade", path, "--format", fmt, "--output", target)
        assert code in (0, 2), (name, err)
        body = target.read_text(encoding="utf-8")
        values = strings_of(fmt, body)
        for value in values:
            assert not any(c in value for c in CONTROLS), (name, value)
            if fmt in ("gradescope", "prairielearn", "junit"):           # what a platform renders
                assert "<img" not in value and "<script" not in value, (name, value)
        if fmt == "text":                                                # one line per check: none forged
            assert not any(line.startswith("FAKE") for line in body.splitlines()), name
        if fmt == "gradescope":
            data = json.loads(body)
            jsonschema.validate(data, GRADESCOPE)
            assert data["output_format"] == data["test_output_format"] == data["test_name_format"] == "text"
            assert all(t["output_format"] == t["name_format"] == "text" for t in data["tests"])
        if fmt == "prairielearn":
            jsonschema.validate(json.loads(body), PRAIRIELEARN)
        for line in err.splitlines():                                     # the terminal: one line each
            assert line.startswith("trainwall: ") and not any(c in line for c in CONTROLS), (name, line)


def test_hostile_strings_in_the_summary_and_the_terminal(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name, text in hostile_submissions().items():
        (folder / name).write_text(text)
    (folder / "=HYPERLINK(1).toml").write_text(optimal_submission("mobile/1"))
    code, out, err = cli("grade", folder, "--format", "gradescope", "--output", tmp_path / "out", "--jobs", 1)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1 and not any(c in out for c in CONTROLS)
    text = (tmp_path / "out" / "summary.csv").read_text(encoding="utf-8")
    assert not any(c in text for c in CONTROLS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert "'=HYPERLINK(1).toml" in {r["file"] for r in rows}
    for row in rows:
        for column in ("file", "student", "mission", "error", "results"):
            assert row[column][:1] not in ("=", "+", "-", "@", "\t"), row[column]     # never a formula


def test_index_csv_never_holds_a_formula(tmp_path, drawn):
    m, variants = drawn
    write(variants, m, 1, tmp_path / "v")
    rows = list(csv.DictReader((tmp_path / "v" / "keys" / "index.csv").open()))
    assert [r["student"] for r in rows] == ["'" + v.student for v in variants]
    for row in rows:
        assert all(cell[:1] not in ("=", "+", "-", "@") for cell in row.values())


def test_file_names_on_the_terminal_stay_one_line(tmp_path):
    path = tmp_path / "bad\n\x1b[2J\u202eevil.toml"
    path.write_text("[workload\n")
    for argv in (("evaluate", path), ("grade", path), ("evaluate", tmp_path / "missing\nline.toml")):
        code, _, err = cli(*argv)
        assert code == 2
        lines = [line for line in err.splitlines() if line.strip()]
        assert all(line.startswith("trainwall: ") for line in lines), err
        assert not any(c in err for c in CONTROLS) and "\x1b" not in err


def test_clean_is_the_one_cleaner():
    from trainwall.challenges import results

    assert results.clean is outputs.clean
    assert outputs.clean("a\nb\x1b[31mc\u202ed") == "a\ufffdb\ufffdc\ufffdd"
    assert outputs.clean("<b>x</b> <= 3 & y", markup=True) == "\uff1cb>x\uff1c/b> <= 3 & y"
    assert outputs.clean("<b>", markup=False) == "<b>"
    assert outputs.csv_cell("=1+1") == "'=1+1" and outputs.csv_cell("ok") == "ok" and outputs.csv_cell(None) == ""
    for text in ("=1+1", "-2", "@x", "ok", "'quoted", "it's"):      # regrade reads summary.csv's cells back
        assert outputs.csv_text(outputs.csv_cell(text)) == text


# --- 7. an empty path is not the current folder ----------------------------------------------------

def test_an_empty_mission_is_a_user_error(tmp_path, small_class):
    submission = small_class / "alice.toml"
    target = tmp_path / "r.json"
    code, _, err = cli("grade", submission, "--mission", "", "--format", "json", "--output", target)
    assert code == 2 and "empty" in err and not target.exists()
    code, _, err = cli("grade", small_class, "--mission", "", "--output", tmp_path / "out", "--jobs", 1)
    assert code == 2 and "empty" in err and not (tmp_path / "out").exists()
    code, _, err = cli("grade", "", "--output", target)
    assert code == 2 and "empty" in err
    with pytest.raises(grading.InputError):
        grading.MissionSource.open("  ")
