"""Instructors' tools: class-scale grading, seeded variants with answer keys kept apart, the
Gradescope bundle run against a Gradescope-shaped tree, and the published JSON Schemas."""

import csv
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

from platform_schemas import GRADESCOPE
from test_grading import optimal_submission, submission_text
from trainwall.challenges import answers, grading
from trainwall.core.fileformats import safe_name
from trainwall.challenges.mission import load_mission, mission, parse_mission, shipped_ids
from trainwall.cli import main

ROOT = Path(__file__).resolve().parents[1]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- class grading ---------------------------------------------------------------------------------

@pytest.fixture
def class_folder(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "alice.toml").write_text(optimal_submission("mobile/1"))
    (folder / "bob.toml").write_text(submission_text("mobile/1"))                 # breaks the memory wall
    (folder / "carol.json").write_text("{not json")
    (folder / "dave.toml").write_text(optimal_submission("cloud/2", predictions=False))
    (folder / "=cmd|calc.toml").write_text(submission_text("mobile/1").replace('"ab123"', '"=HYPERLINK(1)"'))
    (folder / ".hidden.toml").write_text("ignored")
    return folder


def test_a_class_is_graded_into_files_a_summary_and_a_histogram(tmp_path, class_folder):
    out = tmp_path / "results"
    code = main(["grade", str(class_folder), "--format", "gradescope", "--output", str(out), "--jobs", "1"])
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{safe_name(n)}.json" for n in ("=cmd|calc.toml", "alice.toml", "bob.toml",
                                                               "carol.json", "dave.toml")]
                           + ["summary.csv", "scores.png", "checks.png", ".trainwall"])
    for name in files:
        if name.endswith(".json"):
            jsonschema.validate(json.loads((out / name).read_text()), GRADESCOPE)
    rows = {r["file"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert float(rows["alice.toml"]["score"]) == pytest.approx(1.0)
    assert float(rows["bob.toml"]["score"]) == 0.0 and rows["bob.toml"]["feasible"] == "False"
    assert rows["carol.json"]["gradable"] == "False" and "not valid JSON" in rows["carol.json"]["error"]
    assert float(rows["dave.toml"]["score"]) == pytest.approx(0.7)    # right plan, no predictions, no move log
    assert rows["'=cmd|calc.toml"]["student"] == "'=HYPERLINK(1)"      # spreadsheets show it, never run it
    # the instructor's view: Locks right of asked, walls broken, why a file is not gradable
    asked = len(mission("mobile/1").lock)
    assert rows["alice.toml"]["locks_right"] == f"{asked}/{asked}" and rows["alice.toml"]["walls_broken"] == ""
    assert rows["bob.toml"]["walls_broken"] == "memory" and rows["bob.toml"]["locks_right"] == f"0/{asked}"
    assert rows["carol.json"]["not_gradable"] == "malformed" and rows["alice.toml"]["not_gradable"] == ""
    # one column per Lock and per wall of the class (mobile/1's and cloud/2's)
    for lock in mission("mobile/1").lock:
        assert rows["alice.toml"][f"lock:{lock.id}"] == "right" and rows["bob.toml"][f"lock:{lock.id}"] == "wrong"
        assert rows["dave.toml"][f"lock:{lock.id}"] == "" and rows["carol.json"][f"lock:{lock.id}"] == ""
    assert rows["bob.toml"]["wall:memory"] == "broken" and rows["alice.toml"]["wall:memory"] == "held"
    assert rows["dave.toml"]["wall:starvation"] == "held" and rows["alice.toml"]["wall:starvation"] == ""
    assert rows["dave.toml"]["lock:" + mission("cloud/2").lock[0].id] == "wrong"      # asked, not answered
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parallel_class_grading_writes_the_same_bytes(tmp_path, class_folder):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["grade", str(class_folder), "--format", "json", "--output", str(one), "--jobs", "1"]) == 0
    assert main(["grade", str(class_folder), "--format", "json", "--output", str(two), "--jobs", "2"]) == 0
    assert tree(one) == tree(two)


def test_a_folder_needs_an_output_folder(class_folder, capsys):
    assert main(["grade", str(class_folder)]) == 2
    assert "give --output DIR" in capsys.readouterr().err


# --- variants --------------------------------------------------------------------------------------

HOSTILE_ROSTER = ["student\n", "ab123\n", "../../escape\n", "/etc/passwd\n", ".hidden\n", "Zoë Ünïcode\n",
                  "a/b\\c\n", '"quoted, with comma"\n', "con\n"]


def generate(tmp_path, name, *args):
    out = tmp_path / name
    assert main(["generate", *args, "--out", str(out)]) == 0
    return out


def test_same_seed_and_roster_give_identical_bytes_and_ids_stay_inside(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("".join(HOSTILE_ROSTER))
    a = generate(tmp_path, "a", "mobile/1", "--roster", str(roster), "--seed", "11", "--jobs", "1")
    b = generate(tmp_path, "b", "mobile/1", "--roster", str(roster), "--seed", "11", "--jobs", "2")
    assert tree(a) == tree(b)
    c = generate(tmp_path, "c", "mobile/1", "--roster", str(roster), "--seed", "12", "--jobs", "1")
    assert tree(a) != tree(c)
    for path in a.rglob("*"):
        assert path.resolve().is_relative_to(a.resolve())
    students = [row["student"] for row in csv.DictReader((a / "keys" / "index.csv").open())]
    assert students == ["ab123", "../../escape", "/etc/passwd", ".hidden", "Zoë Ünïcode", "a/b\\c",
                        "quoted, with comma", "con"]
    folders = sorted(p.name for p in (a / "handouts").iterdir())
    assert len(folders) == len(students) and not any(f.startswith(".") or "/" in f for f in folders)


def test_handouts_hold_no_answers_and_keys_are_what_a_fresh_solve_gives(tmp_path):
    out = generate(tmp_path, "v", "cloud/3", "--count", "2", "--seed", "3", "--jobs", "1")
    for key_path in sorted((out / "keys").glob("*.json")):
        key = json.loads(key_path.read_text())
        handout = out / "handouts" / key_path.stem
        text = "".join(p.read_text() for p in handout.iterdir())
        assert repr(key["optimum"]["objective"]) not in text and "binding" not in text
        assert "seed" not in text     # with the seed and the roster anyone could redraw every variant
        variant = load_mission(handout / "mission.toml")             # what the student has, solved afresh
        best = answers.Optimum.of(variant)
        assert best.objective == key["optimum"]["objective"] and best.certified
        assert variant.wall in best.binding                           # the intended wall binds
        naive = grading.grade_submission(variant, _submission(variant, variant.naive), best, "naive")
        assert naive.feasible is False                                # the naive plan still fails
        assert variant.reference == key["optimum"]["reference"]
        # one coherent story told with the variant's own numbers, not the original plus overrides
        assert "{" not in variant.story and "says otherwise" not in variant.story
        assert variant.rendered() == variant
        template = {**mission("cloud/3").model_dump(), **variant.model_dump(include={"limits", "scenario",
                                                                                    "objective", "naive"})}
        assert variant.story == parse_mission(template, "template").rendered().story
        assert f"at most {variant.limits.global_batch}" in (handout / "submission.toml").read_text()


def _submission(variant, sections):
    from trainwall.challenges.submission import parse_submission

    return parse_submission({"mission": variant.reference, "configuration": {
        k: v for k, v in sections.items() if k in ("training", "data")}}, "t")


def test_a_variant_is_graded_against_its_answer_key(tmp_path):
    out = generate(tmp_path, "v", "mobile/1", "--count", "2", "--seed", "5", "--jobs", "1")
    key = json.loads(sorted((out / "keys").glob("*.json"))[0].read_text())
    template = (out / "handouts" / "variant-1" / "submission.toml").read_text()
    assert tomllib.loads(template)["mission"] == key["optimum"]["reference"]
    plan = key["optimum"]["configuration"]
    text = submission_text(key["optimum"]["reference"], plan["training"], plan["data"],
                           key["optimum"]["lock_answers"]).replace('"ab123"', json.dumps(key["student"]))
    sub = tmp_path / "s.toml"
    sub.write_text(text)
    result = tmp_path / "r.json"
    assert main(["grade", str(sub), "--mission", str(out), "--format", "json", "--output", str(result)]) == 0
    assert json.loads(result.read_text())["score"] == pytest.approx(1.0)
    wrong = tmp_path / "w.toml"
    wrong.write_text(text.replace(key["optimum"]["reference"], "mobile/1@ffff"))
    assert main(["grade", str(wrong), "--mission", str(out), "--output", str(result), "--format", "json"]) == 2
    assert "no answer key" in json.loads(result.read_text())["format_errors"][0]


def test_a_copied_variant_grades_zero_and_is_flagged(tmp_path):
    """Student B hands in student A's file with only the student changed (issue 14: it scored
    1/1): the answer key says whom the variant was drawn for; the copy earns nothing, says why,
    and the instructor's summary shows it."""
    out = generate(tmp_path, "v", "mobile/1", "--count", "2", "--seed", "5", "--jobs", "1")
    keys = [json.loads(p.read_text()) for p in sorted((out / "keys").glob("*.json"))]
    a, b = keys[0], keys[1]
    plan = a["optimum"]["configuration"]
    text = submission_text(a["optimum"]["reference"], plan["training"], plan["data"], a["optimum"]["lock_answers"])
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "a.toml").write_text(text.replace('"ab123"', json.dumps(a["student"])))
    (folder / "b.toml").write_text(text.replace('"ab123"', json.dumps(b["student"])))
    (folder / "anonymous.toml").write_text(text.replace('student = "ab123"\n', ""))
    results = tmp_path / "results"
    assert main(["grade", str(folder), "--mission", str(out), "--output", str(results), "--format", "json"]) == 0
    rows = {r["file"]: r for r in csv.DictReader((results / "summary.csv").open())}
    assert float(rows["a.toml"]["score"]) == pytest.approx(1.0)
    assert float(rows["b.toml"]["score"]) == 0 and "belongs to another student" in rows["b.toml"]["error"]
    assert float(rows["anonymous.toml"]["score"]) == 0 and "drawn for one student" in rows["anonymous.toml"]["error"]


@pytest.mark.parametrize("roster, message", [("student\nab\nab\n", "duplicate of row 2"),
                                             ("student,name\nab,A\n,B\n", "empty"), ("", "no rows")])
def test_bad_roster_is_bad_input(tmp_path, capsys, roster, message):
    path = tmp_path / "roster.csv"
    path.write_text(roster)
    assert main(["generate", "mobile/1", "--roster", str(path), "--seed", "1", "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_every_shipped_variant_space_is_valid(mission_id):
    """Every perturbed value makes a valid scenario (checked when the mission loads), and the
    shipped values are among the draws."""
    m = mission(mission_id)
    assert m.variants is not None
    from trainwall.challenges.mission import lookup

    dumped = m.model_dump()
    for path, values in m.variants.perturb.items():
        shipped = lookup(dumped, path)
        assert shipped is None or shipped in values, (path, shipped)


# --- the Gradescope bundle -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    assert main(["autograder", "gradescope", "mobile/1", "--out", str(out)]) == 0
    return out


def run_autograder(bundle, tmp_path, files):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").mkdir()
    for name in ("setup.sh", "run_autograder", "bundle.json"):
        (root / "source" / name).write_bytes((bundle / name).read_bytes())
    (root / "source" / "keys").mkdir()
    for key in (bundle / "keys").iterdir():
        (root / "source" / "keys" / key.name).write_bytes(key.read_bytes())
    for name, text in files.items():
        (root / "submission" / name).write_text(text)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "TRAINWALL_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, GRADESCOPE)
    return results


def test_bundle_has_the_files_gradescope_runs(bundle):
    assert os.access(bundle / "setup.sh", os.X_OK) and os.access(bundle / "run_autograder", os.X_OK)
    assert "pip install \"$SOURCE/trainwall-" in (bundle / "setup.sh").read_text()   # its own wheel, not by name
    for script in ("setup.sh", "run_autograder"):
        assert subprocess.run(["bash", "-n", str(bundle / script)]).returncode == 0   # parses as bash
    key = json.loads((bundle / "keys" / "mobile-1.json").read_text())
    assert key["optimum"]["objective"] == answers.optimum(mission("mobile/1")).objective


def test_a_wheel_given_to_install_travels_in_the_bundle(tmp_path):
    wheel = tmp_path / "trainwall-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    out = tmp_path / "bundle"
    assert main(["autograder", "gradescope", "tiny/1", "--out", str(out), "--install", str(wheel)]) == 0
    assert (out / wheel.name).read_bytes() == b"PK"
    assert f'pip install "$SOURCE/{wheel.name}"' in (out / "setup.sh").read_text()


@pytest.mark.parametrize("files, score", [({"answer.toml": optimal_submission("mobile/1")}, 1.0),
                                          ({"answer.toml": submission_text("mobile/1")}, 0.0),
                                          ({"answer.yaml": "- just\n- a list\n"}, 0.0),
                                          ({"README.md": "no submission here"}, 0.0)])
def test_run_autograder_on_a_gradescope_shaped_tree(bundle, tmp_path, files, score):
    results = run_autograder(bundle, tmp_path, files)
    assert results["score"] == pytest.approx(score)


# --- published schemas -----------------------------------------------------------------------------

def schema(kind):
    done = subprocess.run([sys.executable, "-m", "trainwall.cli", "schema", kind], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    published = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(published)
    return jsonschema.Draft202012Validator(published)


def test_config_schema_accepts_the_examples_and_refuses_a_typo():
    validator = schema("config")
    for path in sorted((ROOT / "examples").glob("*.toml")):
        validator.validate(tomllib.loads(path.read_text()))
    bad = tomllib.loads((ROOT / "examples" / "cloud.toml").read_text())
    bad["training"]["microbatch"] = 4
    assert not validator.is_valid(bad)


def test_mission_schema_accepts_every_shipped_mission():
    validator = schema("mission")
    for mission_id in shipped_ids():
        track, part = mission_id.split("/")
        validator.validate(tomllib.loads((ROOT / "challenges" / track / f"{part}.toml").read_text()))


def test_submission_schema_agrees_with_the_validator():
    validator = schema("submission")
    good = tomllib.loads(optimal_submission("cloud/3"))
    validator.validate(good)
    for bad in ({**good, "extra": 1}, {**good, "mission": "cloud/7"},
                {**good, "configuration": {"training": {"micro_batch": 0}}}):
        assert not validator.is_valid(bad)


def test_a_handout_does_not_hand_out_its_answer(tmp_path, capsys):
    """Issue 14: `solve handouts/<me>/mission.toml` printed the variant's optimum. A handout is
    marked as one; solve, plot and explain refuse it without --instructor and say why."""
    out = generate(tmp_path, "v", "mobile/2", "--count", "1", "--seed", "3", "--jobs", "1")
    handout = out / "handouts" / "variant-1" / "mission.toml"
    assert load_mission(handout).handout
    capsys.readouterr()
    for argv in (["solve", str(handout)], ["plot", "pipeline", str(handout), "-o", str(tmp_path / "p.png")],
                 ["explain", str(handout)]):
        assert main(argv) == 2
        assert "student's handout" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
    assert main(["solve", str(handout), "--instructor"]) == 0
    key = json.loads(next((out / "keys").glob("*.json")).read_text())
    assert not key["mission"].get("handout")          # the answer key's copy is the instructor's


def test_answer_keys_record_who_solved_them_and_which_mission(tmp_path):
    """Issue 14: a key records the trainwall version that solved it and the SHA-256 of the
    mission it answers (a hash a reader can recompute from the key's own mission data)."""
    import hashlib
    from importlib.metadata import version

    out = generate(tmp_path, "v", "tiny/2", "--count", "1", "--seed", "1", "--jobs", "1")
    key = json.loads(next((out / "keys").glob("*.json")).read_text())
    assert key["solved_by"] == f"trainwall {version('trainwall')}"
    assert key["mission_sha256"] == hashlib.sha256(json.dumps(key["mission"], sort_keys=True).encode()).hexdigest()


# --- regrade: whose scores change when a mission is fixed --------------------------------------------

def test_regrade_lists_whose_scores_change_and_why(tmp_path, class_folder):
    import tomllib

    from trainwall.challenges.mission import _shipped_path

    results = tmp_path / "results"
    assert main(["grade", str(class_folder), "--format", "json", "--output", str(results), "--jobs", "1"]) == 0
    fixed = tomllib.loads(_shipped_path("mobile/1").read_text())
    fixed["scenario"]["system"]["memory_budget"] = 384 * 2 ** 20        # the instructor fixes the budget
    fixed_file = tmp_path / "mobile-1-fixed.json"
    fixed_file.write_text(json.dumps(fixed))
    for name in ("dave.toml", "carol.json", "=cmd|calc.toml"):             # mobile/1 only from here
        (class_folder / name).unlink()
    out = tmp_path / "changes.csv"
    assert main(["regrade", str(class_folder), "--results", str(results), "--mission", str(fixed_file),
                 "--output", str(out), "--jobs", "1"]) == 0
    rows = {r["file"]: r for r in csv.DictReader(out.open())}
    # alice's plan no longer fits 384 MiB: her score falls, and why says the wall and the optimum
    assert set(rows) == {"alice.toml"}
    assert float(rows["alice.toml"]["new_score"]) < float(rows["alice.toml"]["old_score"]) == 1.0
    assert "wall:memory held -> broken" in rows["alice.toml"]["why"]
    assert "certified optimum" in rows["alice.toml"]["why"]
    # the same mission again: nothing changes
    assert main(["regrade", str(class_folder), "--results", str(results), "--mission", "mobile/1",
                 "--output", str(tmp_path / "none.csv"), "--jobs", "1"]) == 0
    assert (tmp_path / "none.csv").read_text().splitlines() == [",".join(
        ("file", "student", "mission", "old_score", "new_score", "why"))]


def test_regrade_never_writes_into_its_inputs(tmp_path, class_folder):
    results = tmp_path / "results"
    assert main(["grade", str(class_folder), "--format", "json", "--output", str(results), "--jobs", "1"]) == 0
    assert main(["regrade", str(class_folder), "--results", str(results), "--mission", "mobile/1",
                 "--output", str(results / "summary.csv")]) == 2
    assert main(["regrade", str(class_folder), "--results", str(tmp_path / "nowhere"), "--mission", "mobile/1"]) == 2


def test_a_roster_gives_an_lms_gradebook(tmp_path, class_folder):
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,Email,SIS User ID\nab123,ab@uni.edu,111\nzz9,zz@uni.edu,=222\n")
    out = tmp_path / "results"
    assert main(["grade", str(class_folder), "--output", str(out), "--roster", str(roster),
                 "--assignment", "Lab 3 (1234)", "--jobs", "1"]) == 0
    rows = list(csv.reader((out / "gradebook.csv").open()))
    assert rows[0] == ["Student", "Email", "SIS User ID", "Lab 3 (1234)"]
    # ab123: the best mobile/1 file (alice's, 1) plus cloud/2 (dave's, 0.7); zz9 submitted nothing
    assert rows[1][:3] == ["ab123", "ab@uni.edu", "111"] and float(rows[1][3]) == pytest.approx(1.7)
    assert rows[2] == ["zz9", "zz@uni.edu", "'=222", ""]
    assert main(["grade", str(class_folder / "alice.toml"), "--roster", str(roster)]) == 2   # a folder's option
    # summary.csv keeps the roster's columns beside each submission of a roster student
    summary = {r["file"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert summary["alice.toml"]["roster:Email"] == "ab@uni.edu" and summary["alice.toml"]["roster:SIS User ID"] == "111"
    assert summary["carol.json"]["roster:Email"] == ""                        # not gradable: no student known
    assert summary["'=cmd|calc.toml"]["roster:Student"] == ""                 # not on the roster


def test_lock_and_wall_rates_count_the_summarys_verdicts(tmp_path, class_folder):
    """checks.png's counts are summary.csv's right / wrong and held / broken cells, tallied."""
    from trainwall.challenges.classroom import check_rates
    from trainwall.challenges.ledger import verdicts

    out = tmp_path / "results"
    assert main(["grade", str(class_folder), "--output", str(out), "--jobs", "1"]) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    from trainwall.challenges import grading

    files = sorted(p for p in class_folder.iterdir() if not p.name.startswith("."))
    locks, walls = check_rates([verdicts(grading.grade_file(p, grading.MissionSource.open(None))) for p in files])
    for name, (right, asked) in locks.items():
        cells = [r[f"lock:{name}"] for r in rows]
        assert (right, asked) == (cells.count("right"), cells.count("right") + cells.count("wrong"))
    for name, (broken, judged) in walls.items():
        cells = [r[f"wall:{name}"] for r in rows]
        assert (broken, judged) == (cells.count("broken"), cells.count("broken") + cells.count("held"))
    assert walls["memory"][0] >= 1 and locks                                   # bob breaks memory
    first = (out / "checks.png").read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["grade", str(class_folder), "--output", str(tmp_path / "again"), "--jobs", "1"]) == 0
    assert (tmp_path / "again" / "checks.png").read_bytes() == first       # deterministic
