"""PrairieLearn bundles as shipped: the grading image's setup.sh run in a fresh virtual
environment (dependencies from the package index, trainwall from the wheel in image/),
each question's server.py run as PrairieLearn runs it (generate, then file), and its
tests/run.sh run on a /grade-shaped tree (paths parameterised by GRADE_ROOT, so no root
is needed). Identity is the variant PrairieLearn gave the student: a file made for
another variant is refused, and does not spend an attempt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from platform_schemas import PRAIRIELEARN
from test_bundles import handout_submission, run_setup
from test_grading import optimal_submission
from trainwall.challenges import wheel
from trainwall.cli import main

IMAGE = "myorg/trainwall-grader:1"


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    out = tmp_path_factory.mktemp("numbered") / "tiny2"
    assert main(["generate", "tiny/2", "--count", "3", "--seed", "7", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, numbered):
    out = tmp_path_factory.mktemp("pl") / "bundle"
    assert main(["autograder", "prairielearn", "mobile/1", str(numbered), "--image", IMAGE, "--out", str(out),
                 "--points", "tiny/2=3"]) == 0
    return out


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory, bundle):
    """The image's setup.sh as its Dockerfile runs it, into a fresh virtual environment."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    run_setup(bundle / "image" / "setup.sh", {"TRAINWALL_VENV": str(venv)})
    return venv / "bin" / "python"


def server(question: Path, data: dict) -> dict:
    """Run the question's server.py generate (or file, when ``data`` has a filename) in the
    question folder, in a fresh interpreter, as PrairieLearn's question worker does."""
    code = ("import json, sys, server; d = json.load(sys.stdin); f = d.get('filename')\n"
            "out = server.file(d) if f else (server.generate(d) or d)\nprint(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(data), capture_output=True, text=True,
                          cwd=question, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def params_of(question: Path, seed: int) -> dict:
    return server(question, {"params": {}, "correct_answers": {}, "variant_seed": seed})["params"]


def job(tmp_path: Path, question: Path, files: dict[str, str], params: dict, python: Path) -> dict:
    """One grading job: /grade/{tests,student,data} filled, tests/run.sh run, results.json read."""
    root = tmp_path / "grade"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(question / "tests", root / "tests")
    (root / "student").mkdir()
    for name, text in files.items():
        (root / "student" / name).write_text(text)
    (root / "data").mkdir()
    (root / "data" / "data.json").write_text(json.dumps({"params": params, "submitted_answers": {}}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(["bash", str(root / "tests" / "run.sh")], capture_output=True, text=True, timeout=300,
                          env={**env, "GRADE_ROOT": str(root), "TRAINWALL_PYTHON": str(python)})
    assert done.returncode == 0, done.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, PRAIRIELEARN)
    return data


def test_the_image_installs_trainwall_from_its_own_wheel(bundle, venv_python):
    setup = (bundle / "image" / "setup.sh").read_text()
    assert "pip install trainwall" not in setup and wheel.wheel_name() in setup
    assert (bundle / "image" / wheel.wheel_name()).is_file()
    assert "setup.sh" in (bundle / "image" / "Dockerfile").read_text()
    where = subprocess.run([str(venv_python), "-c", "import trainwall; print(trainwall.__file__)"],
                           capture_output=True, text=True, cwd=bundle)
    assert where.returncode == 0 and str(venv_python.parent.parent) in where.stdout      # not this checkout


def test_each_mission_is_one_externally_graded_question(bundle):
    questions = sorted(p.name for p in (bundle / "questions").iterdir())
    assert questions == ["trainwall-mobile-1", "trainwall-tiny-2"]
    uuids = set()
    for name in questions:
        info = json.loads((bundle / "questions" / name / "info.json").read_text())
        assert info["type"] == "v3" and info["gradingMethod"] == "External"
        grading = info["externalGradingOptions"]
        assert grading["enabled"] and grading["image"] == IMAGE and grading["entrypoint"] == "/grade/tests/run.sh"
        assert 0 < grading["timeout"] <= 600                       # PrairieLearn's limit
        uuids.add(info["uuid"])
        config = json.loads((bundle / "questions" / name / "tests" / "bundle.json").read_text())
        for key, digest in config["keys"].items():
            assert hashlib.sha256((bundle / "questions" / name / "tests" / "keys" / key).read_bytes()).hexdigest() \
                == digest
    assert len(uuids) == 2
    zone = json.loads((bundle / "assessment.json").read_text())["zones"][0]["questions"]
    assert zone == [{"id": "trainwall-mobile-1", "points": 1.0}, {"id": "trainwall-tiny-2", "points": 3.0}]


def test_the_same_inputs_give_the_same_bundle(tmp_path, numbered, bundle):
    again = tmp_path / "again"
    assert main(["autograder", "prairielearn", "mobile/1", str(numbered), "--image", IMAGE, "--out", str(again),
                 "--points", "tiny/2=3"]) == 0
    files = sorted(p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((bundle / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_server_gives_each_variant_its_own_files(bundle, numbered):
    from trainwall.challenges.answers import load_keys

    question = bundle / "questions" / "trainwall-tiny-2"
    keys = {k.student: reference for reference, k in load_keys(numbered).items()}
    seen = set()
    for seed in range(12):
        params = params_of(question, seed)
        assert keys[params["variant"]] == params["mission"] and params["handout"] is True
        assert params["brief"].startswith(params["mission"])
        template = server(question, {"params": params, "filename": "submission.toml"})
        assert f'mission = "{params["mission"]}"' in template and f'student = "{params["variant"]}"' in template
        handout = server(question, {"params": params, "filename": "mission.toml"})
        assert handout == (numbered / "handouts" / params["variant"] / "mission.toml").read_text()
        seen.add(params["variant"])
    assert seen == set(keys)                                        # every variant is dealt
    assert params_of(question, 5) == params_of(question, 5)         # a variant keeps its trainwall variant


def test_a_students_own_variant_grades_in_full(tmp_path, bundle, numbered, venv_python):
    question = bundle / "questions" / "trainwall-tiny-2"
    params = params_of(question, 3)
    data = job(tmp_path, question, {"submission.toml": handout_submission(numbered, params["variant"])}, params,
               venv_python)
    # the 5-move rule's 0.1 needs a move log (none here)
    assert data["gradable"] and data["score"] == pytest.approx(0.9)
    shipped = bundle / "questions" / "trainwall-mobile-1"
    mobile = params_of(shipped, 3)
    assert mobile["variant"] == "" and mobile["handout"] is False
    data = job(tmp_path, shipped, {"submission.toml": optimal_submission("mobile/1")}, mobile, venv_python)
    assert data["gradable"] and data["score"] == pytest.approx(1.0)


def test_a_file_made_for_another_variant_is_refused(tmp_path, bundle, numbered, venv_python):
    question = bundle / "questions" / "trainwall-tiny-2"
    mine = params_of(question, 3)
    other = next(v for v in ("variant-1", "variant-2", "variant-3") if v != mine["variant"])
    copied = handout_submission(numbered, other).replace('student = "ab123"', f'student = "{mine["variant"]}"')
    data = job(tmp_path, question, {"submission.toml": copied}, mine, venv_python)
    assert data["gradable"] is False and "belongs to another student" in data["format_errors"][0]


@pytest.mark.parametrize("files, message", [
    ({}, "upload exactly one submission file"),
    ({"submission.toml": "x", "other.toml": "y"}, "upload exactly one submission file"),
    ({"submission.toml": optimal_submission("tiny/1")}, "this grader holds no answer key for it"),
])
def test_what_a_question_cannot_grade_spends_no_attempt(tmp_path, bundle, venv_python, files, message):
    question = bundle / "questions" / "trainwall-mobile-1"
    data = job(tmp_path, question, files, params_of(question, 1), venv_python)
    assert data["gradable"] is False and message in " ".join(data["format_errors"])


def test_a_tampered_key_or_a_missing_trainwall_is_the_graders_failure(tmp_path, bundle, venv_python):
    question = tmp_path / "question"
    shutil.copytree(bundle / "questions" / "trainwall-mobile-1", question)
    key = question / "tests" / "keys" / "mobile-1.json"
    key.write_text(key.read_text().replace('"objective"', '"objective" ', 1))
    data = job(tmp_path, question, {"submission.toml": optimal_submission("mobile/1")}, {"variant": ""}, venv_python)
    assert data["gradable"] is False and "autograder itself failed" in data["format_errors"][0]
    data = job(tmp_path, question, {"submission.toml": "x"}, {"variant": ""}, tmp_path / "no-python")
    assert data["gradable"] is False and "could not start trainwall" in data["format_errors"][0]


@pytest.mark.parametrize("args, message", [
    (["mobile/1"], "needs --image"),
    (["mobile/1", "--image", "My Image"], "a Docker image PrairieLearn can pull"),
    (["mobile/1", "--image", IMAGE, "--visibility", "hidden"], "--visibility is Gradescope's"),
])
def test_a_prairielearn_bundle_that_cannot_be_one_is_refused(tmp_path, capsys, args, message):
    assert main(["autograder", "prairielearn", *args, "--out", str(tmp_path / "b")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b" / "questions").exists()


def test_variants_named_after_students_are_refused(tmp_path, capsys):
    """PrairieLearn cannot map a student to a roster row: a named variant would show one
    student another's name."""
    roster = tmp_path / "roster.csv"
    roster.write_text("student\nada@example.edu\n")
    assert main(["generate", "tiny/2", "--roster", str(roster), "--seed", "7", "--out", str(tmp_path / "v")]) == 0
    assert main(["autograder", "prairielearn", str(tmp_path / "v"), "--image", IMAGE,
                 "--out", str(tmp_path / "b")]) == 2
    assert "--count N" in capsys.readouterr().err


def test_image_is_the_prairielearn_platforms_option(tmp_path, capsys):
    assert main(["autograder", "gradescope", "mobile/1", "--image", IMAGE, "--out", str(tmp_path / "b")]) == 2
    assert "--image is for the prairielearn platform" in capsys.readouterr().err
