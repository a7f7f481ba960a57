"""Every reader of a user's file, against the same hostile battery (issue 13).

The readers: a configuration (``trainwall evaluate``), a submission (``trainwall grade``),
a mission (``trainwall solve PATH``), an answer key (``trainwall grade x.toml --mission
KEYS``, the bad file inside KEYS) and a roster (:func:`read_text`, what ``read_roster``
reads with). For each, a FIFO, a link to ``/dev/zero``, a symlink loop, a path through a
regular file, a directory, a missing file, an over-long name, the empty path, a file over
the size cap, nesting 100,000 deep, a key given twice and a 5,000-digit integer give
exit 2 and one line on stderr naming the file (no traceback), within a second of what a
refusal that costs nothing takes; a UTF-8 byte-order mark before a valid file is accepted.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trainwall.core.errors import InputError
from trainwall.core.fileformats import (
    CHANGED_MARK,
    MAX_BYTES,
    MAX_DEPTH,
    read_document,
    read_text,
    safe_name,
)


ROOT = Path(__file__).resolve().parents[1]
BOM = "\ufeff"
#: Seconds a refusal may take beyond what the cheapest refusal (a missing file) takes.
REFUSAL_S = 1.0
#: A hung reader is killed after this long (the test then fails).
HANG_S = 30


def run(*args, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "trainwall.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=HANG_S, stdin=subprocess.DEVNULL, cwd=cwd, check=False)
    return r, time.monotonic() - start


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> float:
    """Seconds the cheapest refusal takes (interpreter start, imports): the slowest of three."""
    missing = tmp_path_factory.mktemp("baseline") / "missing.toml"
    return max(run("evaluate", missing)[1] for _ in range(3))


# --- the hostile inputs ---------------------------------------------------------------------------

def _deep(fmt: str) -> str:
    nest = "[" * 100_000 + "]" * 100_000
    return {"toml": f"a = {nest}\n", "json": nest, "yaml": nest}[fmt]


def _duplicate(fmt: str) -> str:
    return {"toml": "twice_given = 1\ntwice_given = 2\n", "json": '{"twice_given": 1, "twice_given": 2}',
            "yaml": "twice_given: 1\ntwice_given: 2\n"}[fmt]


def _huge_int(fmt: str) -> str:
    digits = "9" * 5000
    return {"toml": f"a = {digits}\n", "json": f'{{"a": {digits}}}', "yaml": f"a: {digits}\n"}[fmt]


def _huge(fmt: str) -> str:
    pad = "x" * MAX_BYTES
    return {"toml": f"# {pad}\na = 1\n", "json": f'{{"a": "{pad}"}}', "yaml": f"# {pad}\na: 1\n"}[fmt]


CONTENT = {"deep": _deep, "duplicate": _duplicate, "huge_int": _huge_int, "huge": _huge,
           "binary": lambda fmt: "a\x00b"}
#: What the one line must say (besides the file's name), per case.
SAYS = {"fifo": "FIFO", "device": "device", "loop": "symbolic links", "through_file": "not a folder",
        "directory": "directory", "missing": "no such", "deep": f"deeper than {MAX_DEPTH}",
        "duplicate": "twice_given", "huge_int": "4300 digits", "huge": "larger than", "binary": "binary",
        "too_long": "too long", "empty": "empty"}
PATHS = ("fifo", "device", "loop", "through_file", "directory", "missing", "too_long")


def make(case: str, folder: Path, name: str) -> Path:
    """The hostile ``case`` at ``folder / name`` (or what stands for it); the path to give."""
    path = folder / name
    fmt = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(path.suffix, "toml")
    if case == "fifo":
        os.mkfifo(path)
    elif case == "device":
        path.symlink_to("/dev/zero")
    elif case == "loop":
        path.symlink_to(path.name)
    elif case == "through_file":
        (folder / "regular").write_text("a file, not a folder\n")
        path = folder / "regular" / name
    elif case == "directory":
        path.mkdir()
    elif case == "too_long":
        path = folder / ("x" * 5000 + path.suffix)
    elif case in CONTENT:
        path.write_text(CONTENT[case](fmt), encoding="utf-8")
    return path


def refused(r: subprocess.CompletedProcess, elapsed: float, baseline: float, *names: str) -> None:
    """Exit 2, one line on stderr (no traceback) that holds each of ``names``, and quickly."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-2000:]
    for name in names:
        assert name in lines[0], (name, lines[0][:500])
    assert elapsed <= baseline + REFUSAL_S, f"took {elapsed:.2f} s (a missing file: {baseline:.2f} s)"


def shown_name(path: Path) -> str:
    return path.name[:40]


# --- configuration, submission, mission --------------------------------------------------------

COMMANDS = {"config": ("evaluate",), "submission": ("grade", "--format", "json", "__PATH__"),
            "mission": ("solve",)}


def _command(reader: str, path) -> list:
    cmd = COMMANDS[reader]
    return [*cmd[:1], *(path if a == "__PATH__" else a for a in cmd[1:])] if "__PATH__" in cmd else [*cmd, path]


#: A path error does not depend on the format; what is in a file does.
HOSTILE = [(case, ".toml") for case in PATHS] + [(case, s) for case in CONTENT for s in (".toml", ".json", ".yaml")]


@pytest.mark.parametrize("reader", list(COMMANDS))
@pytest.mark.parametrize("case, suffix", HOSTILE)
def test_a_hostile_file_is_refused_in_one_line(tmp_path, baseline, reader, case, suffix):
    if (reader, case) == ("submission", "directory"):
        pytest.skip("a folder of submissions is graded as a class (test_classroom.py)")
    path = make(case, tmp_path, f"input{suffix}")
    r, elapsed = run(*_command(reader, path))
    refused(r, elapsed, baseline, shown_name(path), SAYS[case])


@pytest.mark.parametrize("reader", list(COMMANDS))
def test_the_empty_path_is_refused_not_taken_as_the_current_folder(tmp_path, baseline, reader):
    r, elapsed = run(*_command(reader, ""))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert elapsed <= baseline + REFUSAL_S


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads any file")
@pytest.mark.parametrize("reader", list(COMMANDS))
def test_an_unreadable_file_is_refused(tmp_path, baseline, reader):
    path = tmp_path / "locked.toml"
    path.write_text("a = 1\n")
    path.chmod(0)
    r, elapsed = run(*_command(reader, path))
    refused(r, elapsed, baseline, "locked.toml", "permission denied")


def _tiny_submission() -> str:
    return 'mission = "tiny/1"\nstudent = "ab123"\n[configuration.training]\noptimizer = "sgd"\n'


BOM_TWINS = {
    "config": ("tiny.toml", lambda: (ROOT / "examples" / "tiny.toml").read_text(encoding="utf-8")),
    "submission": ("answer.toml", _tiny_submission),
    "mission": ("mission.toml", lambda: (ROOT / "challenges" / "tiny" / "1.toml").read_text(encoding="utf-8")),
}


@pytest.mark.parametrize("reader", list(BOM_TWINS))
def test_a_byte_order_mark_before_a_valid_file_changes_nothing(tmp_path, reader):
    name, text = BOM_TWINS[reader]
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    plain.mkdir(), marked.mkdir()
    (plain / name).write_text(text(), encoding="utf-8")
    (marked / name).write_text(BOM + text(), encoding="utf-8")
    json_flag = ["--json"] if reader == "mission" else []      # the text report shows the solver's time
    a, _ = run(*_command(reader, name), *json_flag, cwd=plain)
    b, _ = run(*_command(reader, name), *json_flag, cwd=marked)
    if reader == "mission":
        a.stdout, b.stdout = ({k: v for k, v in json.loads(r.stdout).items() if k != "solver"} for r in (a, b))
    assert a.returncode != 2 and (a.returncode, a.stdout) == (b.returncode, b.stdout)


@pytest.mark.parametrize("fmt, text", [("json", '{"a": 1}'), ("yaml", "a: 1\n"), ("toml", "a = 1\n")])
def test_a_byte_order_mark_is_read_in_every_format(tmp_path, fmt, text):
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(BOM.encode() + text.encode())
    assert read_document(path) == {"a": 1}


# --- answer keys: the bad file inside the --mission folder ---------------------------------------

@pytest.fixture(scope="module")
def key_text() -> str:
    """A valid answer key of tiny/1, as generate writes one."""
    from trainwall.challenges.answers import optimum
    from trainwall.challenges.mission import mission

    data = tomllib.loads((ROOT / "challenges" / "tiny" / "1.toml").read_text(encoding="utf-8"))
    return json.dumps({"student": "ab123", "seed": 1, "attempt": 0, "rejected_draws": [], "mission": data,
                       "optimum": optimum(mission("tiny/1")).to_dict()}, indent=2, sort_keys=True)


def _grade_with_keys(tmp_path, keys) -> tuple[subprocess.CompletedProcess, float]:
    submission = tmp_path / "answer.toml"
    submission.write_text(_tiny_submission())
    return run("grade", submission, "--format", "json", "--mission", keys)


@pytest.mark.parametrize("case", ["fifo", "device", "loop", "directory", *CONTENT])
def test_a_hostile_answer_key_is_refused(tmp_path, baseline, case):
    keys = tmp_path / "keys"
    keys.mkdir()
    make(case, keys, "k.json")
    r, elapsed = _grade_with_keys(tmp_path, keys)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout
    assert "k.json" in r.stderr and SAYS[case] in r.stderr
    assert elapsed <= baseline + REFUSAL_S


@pytest.mark.parametrize("case", ["through_file", "missing", "too_long"])
def test_a_bad_answer_key_folder_is_refused(tmp_path, baseline, case):
    keys = make(case, tmp_path, "keys")
    r, elapsed = _grade_with_keys(tmp_path, keys)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout, r.stderr[-2000:]
    assert elapsed <= baseline + REFUSAL_S


def test_an_answer_key_with_a_byte_order_mark_grades_as_without(tmp_path, key_text):
    codes = []
    for name, text in (("plain", key_text), ("marked", BOM + key_text)):
        keys = tmp_path / name
        keys.mkdir()
        (keys / "k.json").write_text(text, encoding="utf-8")
        r, _ = _grade_with_keys(tmp_path, keys)
        codes.append((r.returncode, json.loads(r.stdout)["score"]))
    assert codes[0] == codes[1] and codes[0][0] == 0


def test_an_answer_key_with_an_infinite_objective_is_refused(tmp_path, key_text):
    data = json.loads(key_text)
    data["optimum"]["objective"] = float("inf")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k.json").write_text(json.dumps(data), encoding="utf-8")
    r, _ = _grade_with_keys(tmp_path, keys)
    assert r.returncode == 2 and "k.json" in r.stderr and "Traceback" not in r.stderr


# --- rosters (and any text): read_text ----------------------------------------------------------

@pytest.mark.parametrize("case", [*PATHS, "huge", "binary"])
def test_read_text_refuses_what_the_document_readers_refuse(tmp_path, case):
    path = make(case, tmp_path, "roster.csv")
    start = time.monotonic()
    with pytest.raises(InputError) as caught:
        read_text(path, "roster file")
    assert time.monotonic() - start < REFUSAL_S
    line = str(caught.value)
    assert "\n" not in line and shown_name(path) in line and SAYS[case] in line


def test_read_text_drops_a_byte_order_mark_and_refuses_the_empty_path(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes(BOM.encode() + b"student\nab1\n")
    assert read_text(path) == "student\nab1\n"
    with pytest.raises(InputError, match="empty path"):
        read_text("", "roster file")


@pytest.mark.parametrize("case", ["fifo", "device", "loop", "through_file", "huge"])
def test_a_hostile_roster_is_refused(tmp_path, baseline, case):
    roster = make(case, tmp_path, "roster.csv")
    r, elapsed = run("generate", "cloud/3", "--roster", roster, "--seed", "1", "--out", tmp_path / "out")
    refused(r, elapsed, baseline, shown_name(roster), SAYS[case])


# --- the one-line message itself ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["new\nline.toml", "esc\x1b[31mred.toml", "bidi\u202eexe.toml"])
def test_a_file_name_cannot_split_or_colour_the_error_line(tmp_path, baseline, name):
    r, _ = run("evaluate", tmp_path / name)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "\x1b" not in r.stderr and "\u202e" not in r.stderr


# --- safe_name: injective, distinguishable -------------------------------------------------------

ADVERSARIAL = ["x y.json", "x_y.json", safe_name("x y.json"), safe_name("x y.json") + ".json", "..", ".", "",
               "/", "a/b", "a\\b", "a_b", "a\x00b", "a\nb", "\u202eevil", "é", "e\u0301", "CON", "-rf", "--",
               "a--b", ".hidden", "_", "x" * 80, "x" * 81, "x" * 200, "x" * 81 + "y", "\udcff", "A", "a",
               safe_name("a b"), "a b", "a_b" + CHANGED_MARK + "0" * 16]


def test_safe_name_never_maps_two_names_to_one():
    outputs = {}
    for name in ADVERSARIAL:
        out = safe_name(name)
        assert outputs.setdefault(out, name) == name, (name, outputs[out])


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_safe_name_stays_in_its_folder_and_marks_every_change(name):
    out = safe_name(name)
    assert set(out) <= set(string.ascii_letters + string.digits + "._-")
    assert out and not out.startswith((".", "-")) and len(out) <= 80 + len(CHANGED_MARK) + 16
    assert (out == name) == (CHANGED_MARK not in out)          # unchanged names never look changed
    if out != name:
        assert safe_name(out) != out                            # a changed name is never another's raw name kept


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12) | st.text(alphabet="ab_-. ./", max_size=6), min_size=2, max_size=8,
                unique=True))
def test_safe_name_is_injective_on_any_names(names):
    assert len({safe_name(n) for n in names}) == len(names)
